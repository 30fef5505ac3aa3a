"""ALB stack: the internet-facing Application Load Balancer.

One ip target group per load-balanced service, HTTP (and with a certificate HTTPS)
listeners with path routes.
"""

from __future__ import annotations

from typing import Any

from troposphere import GetAtt, Parameter, Ref, Sub, Template
from troposphere import elasticloadbalancingv2 as elb

from kr_cfn.blocks import add_output, checkov_skip, name_tags, new_template
from kr_cfn.config import AlbSlice
from kr_cfn.naming import pascal

LOAD_BALANCER = "LoadBalancer"
HTTP_LISTENER = "HttpListener"
HTTPS_LISTENER = "HttpsListener"


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
    attributes = {
        "routing.http.drop_invalid_header_fields.enabled": "true",
        "deletion_protection.enabled": str(a.deletion_protection).lower(),
        "idle_timeout.timeout_seconds": str(a.idle_timeout),
        "access_logs.s3.enabled": str(a.access_logs_bucket is not None).lower(),
    }
    if a.access_logs_bucket:
        attributes["access_logs.s3.bucket"] = a.access_logs_bucket
        attributes["access_logs.s3.prefix"] = a.access_logs_prefix
    skips = []
    if not a.access_logs_bucket:
        skips.append(("CKV_AWS_91", "Access logs are optional (alb.access_logs_bucket) and off in this environment."))
    lb = t.add_resource(
        elb.LoadBalancer(
            LOAD_BALANCER,
            Type="application",
            Scheme="internet-facing",
            IpAddressType="ipv4",
            Subnets=Ref(subnets),
            SecurityGroups=[Ref(sg)],
            LoadBalancerAttributes=[elb.LoadBalancerAttributes(Key=k, Value=v) for k, v in sorted(attributes.items())],
            Tags=name_tags(cfg.names("alb")),
            **({"Metadata": checkov_skip(*skips)} if skips else {}),
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
    if a.certificate_arn:
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
                Certificates=[elb.Certificate(CertificateArn=a.certificate_arn)],
                DefaultActions=[forward],
            )
        )
        url: Any = f"https://{a.domain_name}" if a.domain_name else Sub(f"https://${{{LOAD_BALANCER}.DNSName}}")
    else:
        serving = t.add_resource(
            elb.Listener(
                HTTP_LISTENER,
                LoadBalancerArn=Ref(lb),
                Port=80,
                Protocol="HTTP",
                DefaultActions=[forward],
                Metadata=checkov_skip(
                    ("CKV_AWS_2", "No certificate in this environment (alb.certificate_arn): HTTP only."),
                    ("CKV_AWS_103", "No certificate in this environment (alb.certificate_arn): no TLS listener."),
                ),
            )
        )
        url = Sub(f"http://${{{LOAD_BALANCER}.DNSName}}")
    for name, (_, route) in cfg.routes.items():
        if route.paths:
            t.add_resource(
                elb.ListenerRule(
                    f"{pascal(name)}ListenerRule",
                    ListenerArn=Ref(serving),
                    Priority=route.priority,
                    Conditions=[
                        elb.Condition(
                            Field="path-pattern", PathPatternConfig=elb.PathPatternConfig(Values=list(route.paths))
                        )
                    ],
                    Actions=[elb.ListenerRuleAction(Type="forward", TargetGroupArn=Ref(groups[name]))],
                )
            )

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
