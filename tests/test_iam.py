"""IAM building blocks: ARNs from pseudo-parameters, trust policies, the TLS-only statement."""

from __future__ import annotations

import json

from awacs.aws import StringEquals

from kr_cfn.iam import arn, deny_insecure_transport, managed_policy, service_trust
from tests.conftest import ENVS, built


def _data(obj: object) -> dict:
    """An awacs object as the template will hold it (troposphere functions included)."""
    from troposphere import encode_to_dict

    return encode_to_dict(obj)


def test_arn_of_this_account_and_region() -> None:
    assert arn("ecr", "repository/x").to_dict() == {
        "Fn::Sub": "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/x"
    }


def test_arn_of_a_global_service_and_a_managed_policy() -> None:
    assert arn("iam", "root", region=False).to_dict() == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"
    }
    assert managed_policy("service-role/P").to_dict() == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/P"
    }


def test_service_trust_with_and_without_conditions() -> None:
    plain = _data(service_trust("monitoring.rds.amazonaws.com"))["Statement"][0]
    assert plain["Principal"] == {"Service": "monitoring.rds.amazonaws.com"} and "Condition" not in plain
    guarded = _data(service_trust("ecs-tasks.amazonaws.com", StringEquals("aws:SourceAccount", "1")))
    assert guarded["Statement"][0]["Condition"] == {"StringEquals": {"aws:SourceAccount": "1"}}


def test_deny_insecure_transport_covers_bucket_and_objects() -> None:
    s = _data(deny_insecure_transport("DataBucket"))
    assert s["Effect"] == "Deny" and s["Principal"] == "*" and s["Action"] == ["s3:*"]
    assert s["Resource"] == [{"Fn::GetAtt": ["DataBucket", "Arn"]}, {"Fn::Sub": "${DataBucket.Arn}/*"}]
    assert s["Condition"] == {"Bool": {"aws:SecureTransport": False}}


def test_every_bucket_of_every_env_is_tls_only() -> None:
    for env in ENVS:
        for name, template in built(env).items():
            resources = template.get("Resources", {})
            buckets = {k for k, v in resources.items() if v["Type"] == "AWS::S3::Bucket"}
            guarded = {
                v["Properties"]["Bucket"]["Ref"]
                for v in resources.values()
                if v["Type"] == "AWS::S3::BucketPolicy"
                and any(s.get("Sid") == "DenyInsecureTransport" for s in v["Properties"]["PolicyDocument"]["Statement"])
            }
            assert buckets == guarded, f"{env}/{name}"


def test_no_literal_partition_in_any_template() -> None:
    for env in ENVS:
        for name, template in built(env).items():
            assert "arn:aws:" not in json.dumps(template), f"{env}/{name}"


def test_record_names_normalized_as_route53_puts_them_in_the_request() -> None:
    from kr_cfn.iam import normalized_record_name

    assert normalized_record_name("App.Example.COM.") == "app.example.com"
    assert normalized_record_name("*.example.com") == "\\052.example.com"
    assert normalized_record_name("_x1.my_host.example.com") == "_x1.my_host.example.com"


def test_dns_record_patterns_of_each_writing_type() -> None:
    from kr_cfn.iam import dns_record_patterns

    resources = [
        ("Alias", {"Type": "AWS::Route53::RecordSet", "Properties": {"Name": "App.Example.com."}}),
        ("Group", {"Type": "AWS::Route53::RecordSetGroup", "Properties": {"RecordSets": [{"Name": "b.example.com"}]}}),
        (
            "Cert",
            {
                "Type": "AWS::CertificateManager::Certificate",
                "Properties": {
                    "DomainValidationOptions": [
                        {"DomainName": "*.example.com", "HostedZoneId": "Z1"},
                        {"DomainName": "elsewhere.org"},  # validated outside: no record written
                    ]
                },
            },
        ),
        # Cloud Map writes its zone's records itself: no name of the namespace (it had '*.svc.local', 'svc.local')
        ("Ns", {"Type": "AWS::ServiceDiscovery::PrivateDnsNamespace", "Properties": {"Name": "svc.local"}}),
        ("Bucket", {"Type": "AWS::S3::Bucket", "Properties": {}}),
    ]
    assert dns_record_patterns(resources) == ("_*.example.com", "app.example.com", "b.example.com")


def test_dns_record_name_that_is_not_a_literal_is_refused() -> None:
    import pytest

    from kr_cfn.iam import dns_record_patterns

    record = {"Type": "AWS::Route53::RecordSet", "Properties": {"Name": {"Fn::Sub": "${Domain}"}}}
    with pytest.raises(ValueError, match=r"^Alias \(AWS::Route53::RecordSet\): the DNS name must be a literal"):
        dns_record_patterns([("Alias", record)])


def test_dns_hosted_zones_are_the_literal_zones_the_records_name() -> None:
    import pytest

    from kr_cfn.iam import dns_hosted_zones

    record = {"Type": "AWS::Route53::RecordSet", "Properties": {"Name": "a.example.com", "HostedZoneId": "Z1"}}
    cert = {
        "Type": "AWS::CertificateManager::Certificate",
        "Properties": {"DomainValidationOptions": [{"DomainName": "a.example.com", "HostedZoneId": "Z2"}, {}]},
    }
    namespace = {"Type": "AWS::ServiceDiscovery::PrivateDnsNamespace", "Properties": {"Name": "svc.local"}}
    assert dns_hosted_zones([("A", record), ("C", cert), ("N", namespace)]) == ("Z1", "Z2")
    by_name = {"Type": "AWS::Route53::RecordSet", "Properties": {"Name": "a.example.com", "HostedZoneName": "x."}}
    with pytest.raises(ValueError, match=r"A \(AWS::Route53::RecordSet\): the hosted zone must be a literal"):
        dns_hosted_zones([("A", by_name)])
