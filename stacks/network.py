"""Network stack: VPC, public (and optional private) subnets, gateways, security groups.

Every security group lives here: the load balancer's, one per ECS service and one per data
endpoint (database, file system, cache). The rules between them are exactly the flows of
kr_cfn.config.flows (who talks to whom, derived from the services' params), so every rule
is in this one template and no other stack adds any: the data and ecs stacks receive
their groups' ids as Parameters (Outputs -> Parameters, no cycle).
"""

from __future__ import annotations

from troposphere import GetAtt, GetAZs, Join, Ref, Select, Template, ec2

from kr_cfn.blocks import add_output, allow_tcp, checkov_skip, name_tags, new_template
from kr_cfn.config import NetworkSlice
from kr_cfn.config.flows import ALB, DATA_ENDPOINTS
from kr_cfn.naming import pascal

VPC = "Vpc"
INTERNET_GATEWAY = "InternetGateway"
GATEWAY_ATTACHMENT = "InternetGatewayAttachment"
PUBLIC_ROUTE_TABLE = "PublicRouteTable"
ALB_SG = "AlbSecurityGroup"
SERVICE_SG_SUFFIX = "ServiceSecurityGroup"
"""``<Pascal service name>ServiceSecurityGroup``: the suffix keeps service groups apart from the others."""

HTTPS_PORT = 443

# A security group with no egress rule gets "allow all" from EC2. Groups that only
# receive traffic (database, file system, cache) get this rule instead, which matches
# nothing (the same trick AWS CDK uses for allowAllOutbound=false).
_NO_EGRESS = ec2.SecurityGroupRule(
    IpProtocol="icmp", FromPort=252, ToPort=86, CidrIp="255.255.255.255/32", Description="Disallow all traffic"
)
# Every task pulls its image from ECR, writes CloudWatch Logs and reads Secrets Manager through its
# own ENI (Fargate platform 1.4.0+:
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-task-networking.html), and the
# VPC has no interface endpoints, so those public HTTPS endpoints must be reachable; the backend also
# calls OpenAI, Confluence and Jira over HTTPS. DNS to the VPC resolver needs no rule: security groups
# do not filter traffic to the Amazon DNS server
# (https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html).
_HTTPS_OUT = ec2.SecurityGroupRule(
    IpProtocol="tcp",
    FromPort=HTTPS_PORT,
    ToPort=HTTPS_PORT,
    CidrIp="0.0.0.0/0",
    Description="HTTPS to ECR, CloudWatch Logs, Secrets Manager and the services' internet APIs",
)


def build(cfg: NetworkSlice) -> Template:
    """Build the network template."""
    t = new_template(f"{cfg.names.prefix}: network (VPC, subnets, gateways, security groups)")
    vpc = t.add_resource(
        ec2.VPC(
            VPC,
            CidrBlock=str(cfg.network.vpc_cidr),
            EnableDnsSupport=True,
            EnableDnsHostnames=True,
            Tags=name_tags(cfg.names("vpc")),
        )
    )
    public = _public_subnets(t, cfg, vpc)
    app_subnets = _private_subnets(t, cfg, vpc, public) if cfg.network.private_subnets else public
    groups = _security_groups(t, cfg, vpc)

    add_output(t, "VpcId", Ref(vpc), "VPC id")
    add_output(t, "VpcCidr", GetAtt(vpc, "CidrBlock"), "VPC CIDR block")
    add_output(t, "PublicSubnetIds", Join(",", [Ref(s) for s in public]), "Public subnets (ALB), comma-separated")
    add_output(
        t,
        "AppSubnetIds",
        Join(",", [Ref(s) for s in app_subnets]),
        "Subnets for tasks, database, file system and cache, comma-separated",
    )
    add_output(
        t,
        "TaskAssignPublicIp",
        "DISABLED" if cfg.network.private_subnets else "ENABLED",
        "Whether tasks need a public IP (no NAT: public subnets and a public IP)",
    )
    for sg in groups:
        add_output(t, f"{sg}Id", GetAtt(sg, "GroupId"), f"{sg} id")
    return t


def _public_subnets(t: Template, cfg: NetworkSlice, vpc: ec2.VPC) -> list[ec2.Subnet]:
    igw = t.add_resource(ec2.InternetGateway(INTERNET_GATEWAY, Tags=name_tags(cfg.names("igw"))))
    attachment = t.add_resource(
        ec2.VPCGatewayAttachment(GATEWAY_ATTACHMENT, VpcId=Ref(vpc), InternetGatewayId=Ref(igw))
    )
    table = t.add_resource(ec2.RouteTable(PUBLIC_ROUTE_TABLE, VpcId=Ref(vpc), Tags=name_tags(cfg.names("public"))))
    t.add_resource(
        ec2.Route(
            "PublicDefaultRoute",
            DependsOn=attachment,
            RouteTableId=Ref(table),
            DestinationCidrBlock="0.0.0.0/0",
            GatewayId=Ref(igw),
        )
    )
    subnets = []
    for i, cidr in enumerate(cfg.network.public_subnet_cidrs, start=1):
        subnet = t.add_resource(
            ec2.Subnet(
                f"PublicSubnet{i}",
                VpcId=Ref(vpc),
                CidrBlock=str(cidr),
                AvailabilityZone=Select(i - 1, GetAZs("")),
                # Without NAT, tasks in these subnets need public IPs to reach ECR and APIs.
                MapPublicIpOnLaunch=True,
                Tags=name_tags(cfg.names(f"public-{i}"), Tier="public"),
                Metadata=checkov_skip(
                    ("CKV_AWS_130", "Public subnet by design: it holds the ALB (and tasks when no NAT is used).")
                ),
            )
        )
        t.add_resource(
            ec2.SubnetRouteTableAssociation(
                f"PublicSubnet{i}RouteTableAssociation", SubnetId=Ref(subnet), RouteTableId=Ref(table)
            )
        )
        subnets.append(subnet)
    return subnets


def _private_subnets(t: Template, cfg: NetworkSlice, vpc: ec2.VPC, public: list[ec2.Subnet]) -> list[ec2.Subnet]:
    nat_count = len(public) if cfg.network.nat_gateways == "per_az" else 1
    nats = []
    for i in range(1, nat_count + 1):
        eip = t.add_resource(
            ec2.EIP(f"NatEip{i}", Domain="vpc", DependsOn=GATEWAY_ATTACHMENT, Tags=name_tags(cfg.names(f"nat-{i}")))
        )
        nats.append(
            t.add_resource(
                ec2.NatGateway(
                    f"NatGateway{i}",
                    AllocationId=GetAtt(eip, "AllocationId"),
                    SubnetId=Ref(public[i - 1]),
                    Tags=name_tags(cfg.names(f"nat-{i}")),
                )
            )
        )
    subnets = []
    for i, cidr in enumerate(cfg.network.private_subnet_cidrs, start=1):
        subnet = t.add_resource(
            ec2.Subnet(
                f"PrivateSubnet{i}",
                VpcId=Ref(vpc),
                CidrBlock=str(cidr),
                AvailabilityZone=Select(i - 1, GetAZs("")),
                Tags=name_tags(cfg.names(f"private-{i}"), Tier="private"),
            )
        )
        # One route table per AZ even with a single NAT, so switching to per_az later
        # only changes routes and never replaces tables.
        table = t.add_resource(
            ec2.RouteTable(f"PrivateRouteTable{i}", VpcId=Ref(vpc), Tags=name_tags(cfg.names(f"private-{i}")))
        )
        t.add_resource(
            ec2.Route(
                f"PrivateDefaultRoute{i}",
                RouteTableId=Ref(table),
                DestinationCidrBlock="0.0.0.0/0",
                NatGatewayId=Ref(nats[(i - 1) % nat_count]),
            )
        )
        t.add_resource(
            ec2.SubnetRouteTableAssociation(
                f"PrivateSubnet{i}RouteTableAssociation", SubnetId=Ref(subnet), RouteTableId=Ref(table)
            )
        )
        subnets.append(subnet)
    return subnets


def group_id(node: str, services: tuple[str, ...]) -> str:
    """Logical id of the security group of a flow node: a service, the load balancer or a data endpoint.

    A service comes first: ``redis`` is the Fargate service when it is rendered, else ElastiCache.
    """
    if node in services:
        return f"{pascal(node)}{SERVICE_SG_SUFFIX}"
    if node == ALB:
        return ALB_SG
    return DATA_ENDPOINTS[node].group


def _security_groups(t: Template, cfg: NetworkSlice, vpc: ec2.VPC) -> list[str]:
    """The groups and every rule between them; returns the groups other stacks use."""
    t.add_resource(
        ec2.SecurityGroup(
            ALB_SG,
            GroupDescription="Load balancer: HTTP and HTTPS from the internet",
            VpcId=Ref(vpc),
            SecurityGroupIngress=[
                ec2.SecurityGroupRule(
                    IpProtocol="tcp",
                    FromPort=port,
                    ToPort=port,
                    CidrIp="0.0.0.0/0",
                    Description=f"{name} from anywhere",
                )
                for name, port in (("HTTP", 80), ("HTTPS", HTTPS_PORT))
            ],
            # Egress only to the load-balanced services: one rule per flow below.
            SecurityGroupEgress=[_NO_EGRESS],
            Tags=name_tags(cfg.names("alb")),
            Metadata=checkov_skip(
                ("CKV_AWS_260", "Internet-facing load balancer: port 80 is open to redirect or serve HTTP.")
            ),
        )
    )
    for name in cfg.services:
        t.add_resource(
            ec2.SecurityGroup(
                group_id(name, cfg.services),
                GroupDescription=f"ECS service {name}: only the flows its params declare",
                VpcId=Ref(vpc),
                SecurityGroupEgress=[_HTTPS_OUT],
                Tags=name_tags(cfg.names(name)),
            )
        )
    for endpoint in DATA_ENDPOINTS.values():
        t.add_resource(
            ec2.SecurityGroup(
                endpoint.group,
                # Admits only the services whose flows reach it (rules below).
                GroupDescription=endpoint.description,
                VpcId=Ref(vpc),
                SecurityGroupEgress=[_NO_EGRESS],
                Tags=name_tags(cfg.names(endpoint.tag)),
            )
        )
    for flow in cfg.flows:
        source, target = group_id(flow.source, cfg.services), group_id(flow.destination, cfg.services)
        allow_tcp(
            t,
            (f"{target}IngressFrom{pascal(flow.source)}", f"{source}EgressTo{pascal(flow.destination)}"),
            GetAtt(source, "GroupId"),
            GetAtt(target, "GroupId"),
            flow.port,
            (f"{flow.destination} from {flow.source}", f"{flow.source} to {flow.destination} on {flow.port}"),
        )
    return [ALB_SG, *(group_id(n, cfg.services) for n in cfg.services), *(e.group for e in DATA_ENDPOINTS.values())]
