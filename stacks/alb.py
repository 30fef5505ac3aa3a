"""ALB stack: the internet-facing Application Load Balancer.

One ip target group per load-balanced service, HTTP (and with a certificate HTTPS)
listeners with path routes; with ``alb.domain_name`` + ``alb.hosted_zone_id`` the ACM
certificate (DNS validation) and an alias record; access logs into the data stack's bucket.
"""

from __future__ import annotations

from typing import Any

from troposphere import GetAtt, Parameter, Ref, Sub, Template, route53
from troposphere import certificatemanager as acm
from troposphere import elasticloadbalancingv2 as elb

from kr_cfn.blocks import add_output, checkov_skip, name_tags, new_template
from kr_cfn.config import AlbSlice
from kr_cfn.config.services import Route, rule_cidr_chunks, rule_priorities
from kr_cfn.naming import pascal

LOAD_BALANCER = "LoadBalancer"
HTTP_LISTENER = "HttpListener"
HTTPS_LISTENER = "HttpsListener"
CERTIFICATE = "Certificate"
ALIAS_RECORD = "AliasRecord"
ACCESS_LOGS_BUCKET = "AccessLogsBucketName"


def build(cfg: AlbSlice) -> Template:
    """Build the alb template."""
    t = new_template(f"{cfg.names.prefix}: application load balancer")
    subnets = t.add_parameter(
        Parameter("PublicSubnetIds", Type="List<AWS::EC2::Subnet::Id>", Description="Public subnets of the ALB")
    )
    sg = t.add_parameter(
        Parameter("AlbSecurityGroupId", Type="AWS::EC2::SecurityGroup::Id", Description="Security group of the ALB")
    )
    vpc = t.add_parameter(Parameter("VpcId", Type="AWS::EC2::VPC::Id", Description="VPC of the target groups"))
    a = cfg.alb
    lb = t.add_resource(
        elb.LoadBalancer(
            LOAD_BALANCER,
            Type="application",
            Scheme="internet-facing",
            IpAddressType="ipv4",
            Subnets=Ref(subnets),
            SecurityGroups=[Ref(sg)],
            Tags=name_tags(cfg.names("alb")),
            **_load_balancer_attributes(t, cfg),
        )
    )
    groups = {}
    for name, (port, route) in cfg.routes.items():
        groups[name] = t.add_resource(
            elb.TargetGroup(
                f"{pascal(name)}TargetGroup",
                TargetType="ip",
                Protocol="HTTP",
                Port=port,
                VpcId=Ref(vpc),
                HealthCheckEnabled=True,
                HealthCheckProtocol="HTTP",
                HealthCheckPath=route.health_check_path,
                Matcher=elb.Matcher(HttpCode="200-399"),
                TargetGroupAttributes=[
                    elb.TargetGroupAttribute(
                        Key="deregistration_delay.timeout_seconds", Value=str(a.deregistration_delay)
                    )
                ],
                Tags=name_tags(cfg.names(name)),
            )
        )
    default = next(n for n, (_, r) in cfg.routes.items() if not r.paths)
    forward = elb.Action(Type="forward", TargetGroupArn=Ref(groups[default]))
    if a.tls:
        serving, url = _https(t, cfg, lb, forward)
    else:
        serving = t.add_resource(
            elb.Listener(
                HTTP_LISTENER,
                LoadBalancerArn=Ref(lb),
                Port=80,
                Protocol="HTTP",
                DefaultActions=[forward],
                # A skip only when params allow plain HTTP (alb.allow_plain_http + its reason): the skip
                # carries the params' own words, never a default excuse.
                **_plain_http_skips(cfg),
            )
        )
        url = Sub(f"http://${{{LOAD_BALANCER}.DNSName}}")
    for name, (_, route) in cfg.routes.items():
        _listener_rules(t, name, route, serving, groups[name])

    add_output(t, "AlbDnsName", GetAtt(lb, "DNSName"), "DNS name of the load balancer")
    add_output(t, "AppUrl", url, "URL of the application")
    add_output(t, "LoadBalancerFullName", GetAtt(lb, "LoadBalancerFullName"), "ALB name for CloudWatch metrics")
    for name, group in groups.items():
        add_output(t, f"{pascal(name)}TargetGroupArn", Ref(group), f"Target group of {name}")
        add_output(
            t,
            f"{pascal(name)}TargetGroupFullName",
            GetAtt(group, "TargetGroupFullName"),
            f"{name} target group for metrics",
        )
    return t


def _listener_rules(t: Template, name: str, route: Route, listener: elb.Listener, group: elb.TargetGroup) -> None:
    """The route's rules: path and host conditions, and the source CIDRs split over rules of 5 values each."""
    if not route.paths and not route.hosts:
        return  # the listener's default action
    conditions = []
    if route.paths:
        conditions.append(
            elb.Condition(Field="path-pattern", PathPatternConfig=elb.PathPatternConfig(Values=list(route.paths)))
        )
    if route.hosts:
        conditions.append(
            elb.Condition(Field="host-header", HostHeaderConfig=elb.HostHeaderConfig(Values=list(route.hosts)))
        )
    for i, (chunk, priority) in enumerate(zip(rule_cidr_chunks(route), rule_priorities(route), strict=True)):
        source = (
            [elb.Condition(Field="source-ip", SourceIpConfig=elb.SourceIpConfig(Values=list(chunk)))] if chunk else []
        )
        t.add_resource(
            elb.ListenerRule(
                f"{pascal(name)}ListenerRule{i + 1 if i else ''}",
                ListenerArn=Ref(listener),
                Priority=priority,
                Conditions=conditions + source,
                Actions=[elb.ListenerRuleAction(Type="forward", TargetGroupArn=Ref(group))],
            )
        )


def route_hosts(cfg: AlbSlice) -> list[str]:
    """Host names the routes serve besides ``alb.domain_name``, in params order."""
    hosts = [h for _, route in cfg.routes.values() for h in route.hosts if h != cfg.alb.domain_name]
    return [h for i, h in enumerate(hosts) if h not in hosts[:i]]


def _plain_http_skips(cfg: AlbSlice) -> dict[str, Any]:
    """Checkov skips for the plain HTTP listener, only when params asked for it (with their reason)."""
    a = cfg.alb
    if not a.allow_plain_http:
        return {}
    return {
        "Metadata": checkov_skip(
            ("CKV_AWS_2", f"Plain HTTP by params (alb.plain_http_reason): {a.plain_http_reason}"),
            ("CKV_AWS_103", f"No TLS listener by params (alb.plain_http_reason): {a.plain_http_reason}"),
        )
    }


def _load_balancer_attributes(t: Template, cfg: AlbSlice) -> dict[str, Any]:
    """Attributes (access logs into the data stack's access-log bucket unless alb.access_logs is off)."""
    a = cfg.alb
    attributes: dict[str, Any] = {
        "routing.http.drop_invalid_header_fields.enabled": "true",
        "deletion_protection.enabled": str(a.deletion_protection).lower(),
        "idle_timeout.timeout_seconds": str(a.idle_timeout),
        "access_logs.s3.enabled": str(a.access_logs).lower(),
    }
    props: dict[str, Any] = {}
    if a.access_logs:
        bucket = t.add_parameter(
            Parameter(ACCESS_LOGS_BUCKET, Type="String", Description="Access-log bucket (data stack)")
        )
        attributes["access_logs.s3.bucket"] = Ref(bucket)
        attributes["access_logs.s3.prefix"] = a.access_logs_prefix
    else:
        props["Metadata"] = checkov_skip(("CKV_AWS_91", "Access logs turned off by params (alb.access_logs: false)."))
    props["LoadBalancerAttributes"] = [
        elb.LoadBalancerAttributes(Key=k, Value=v) for k, v in sorted(attributes.items())
    ]
    return props


def _https(t: Template, cfg: AlbSlice, lb: elb.LoadBalancer, forward: elb.Action) -> tuple[elb.Listener, Any]:
    """HTTP -> HTTPS redirect, the HTTPS listener, and with a hosted zone the certificate and alias record."""
    a = cfg.alb
    certificate: Any = a.certificate_arn
    extra = route_hosts(cfg)
    if a.hosted_zone_id and a.domain_name:
        if not certificate:
            # DNS validation in the zone: CloudFormation adds the validation record itself and the
            # certificate renews as long as the record stays.
            # https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-certificatemanager-certificate.html
            certificate = Ref(
                t.add_resource(
                    acm.Certificate(
                        CERTIFICATE,
                        DomainName=a.domain_name,
                        ValidationMethod="DNS",
                        DomainValidationOptions=[
                            acm.DomainValidationOption(DomainName=d, HostedZoneId=a.hosted_zone_id)
                            for d in [a.domain_name, *extra]
                        ],
                        Tags=name_tags(cfg.names("alb")),
                        # Route hosts (grafana.<domain>) on the same certificate; only present when
                        # routed, so an environment without them keeps its certificate unchanged.
                        **({"SubjectAlternativeNames": extra} if extra else {}),
                    )
                )
            )
        # A only: the load balancer is IPv4 (IpAddressType ipv4), an AAAA alias would resolve nothing.
        names = {ALIAS_RECORD: a.domain_name}
        # One alias per routed service, for its first host (further hosts: DNS managed elsewhere).
        names.update(
            {
                f"{pascal(n)}AliasRecord": r.hosts[0]
                for n, (_, r) in cfg.routes.items()
                if r.hosts[:1] != [a.domain_name] and r.hosts
            }
        )
        for logical_id, record in names.items():
            t.add_resource(
                route53.RecordSetType(
                    logical_id,
                    HostedZoneId=a.hosted_zone_id,
                    Name=record,
                    Type="A",
                    AliasTarget=route53.AliasTarget(
                        HostedZoneId=GetAtt(lb, "CanonicalHostedZoneID"),
                        DNSName=GetAtt(lb, "DNSName"),
                        EvaluateTargetHealth=False,
                    ),
                )
            )
    t.add_resource(
        elb.Listener(
            HTTP_LISTENER,
            LoadBalancerArn=Ref(lb),
            Port=80,
            Protocol="HTTP",
            DefaultActions=[
                elb.Action(
                    Type="redirect",
                    RedirectConfig=elb.RedirectConfig(Protocol="HTTPS", Port="443", StatusCode="HTTP_301"),
                )
            ],
        )
    )
    serving = t.add_resource(
        elb.Listener(
            HTTPS_LISTENER,
            LoadBalancerArn=Ref(lb),
            Port=443,
            Protocol="HTTPS",
            SslPolicy=a.ssl_policy,
            Certificates=[elb.Certificate(CertificateArn=certificate)],
            DefaultActions=[forward],
        )
    )
    url = f"https://{a.domain_name}" if a.domain_name else Sub(f"https://${{{LOAD_BALANCER}.DNSName}}")
    return serving, url
