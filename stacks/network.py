"""Network stack: VPC, public (and optional private) subnets, gateways, security groups.

Ingress to the ECS tasks group depends on the services' ports, so the stack that renders
the services adds those rules; everything else between the groups is fixed and lives here.
"""

from __future__ import annotations

from troposphere import GetAtt, GetAZs, Join, Ref, Select, Template, ec2

from kr_cfn.blocks import add_output, allow_tcp, checkov_skip, name_tags, new_template
from kr_cfn.config import NetworkSlice

VPC = "Vpc"
INTERNET_GATEWAY = "InternetGateway"
GATEWAY_ATTACHMENT = "InternetGatewayAttachment"
PUBLIC_ROUTE_TABLE = "PublicRouteTable"
ALB_SG = "AlbSecurityGroup"
TASK_SG = "TaskSecurityGroup"
DATABASE_SG = "DatabaseSecurityGroup"
FILE_SYSTEM_SG = "FileSystemSecurityGroup"
CACHE_SG = "CacheSecurityGroup"

POSTGRES_PORT = 5432
NFS_PORT = 2049
REDIS_PORT = 6379
HTTPS_PORT = 443

# A security group with no egress rule gets "allow all" from EC2. Groups that only
# receive traffic (database, file system, cache) get this rule instead, which matches
# nothing (the same trick AWS CDK uses for allowAllOutbound=false).
_NO_EGRESS = ec2.SecurityGroupRule(
    IpProtocol="icmp", FromPort=252, ToPort=86, CidrIp="255.255.255.255/32", Description="Disallow all traffic"
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
    _security_groups(t, cfg, vpc)

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
    for sg in (ALB_SG, TASK_SG, DATABASE_SG, FILE_SYSTEM_SG, CACHE_SG):
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


def _security_groups(t: Template, cfg: NetworkSlice, vpc: ec2.VPC) -> None:
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
            # Egress to the tasks is added per target port by the stack that renders services.
            SecurityGroupEgress=[_NO_EGRESS],
            Tags=name_tags(cfg.names("alb")),
            Metadata=checkov_skip(
                ("CKV_AWS_260", "Internet-facing load balancer: port 80 is open to redirect or serve HTTP.")
            ),
        )
    )
    task_sg = t.add_resource(
        ec2.SecurityGroup(
            TASK_SG,
            GroupDescription="ECS tasks: ingress per service port is added by the stack that renders the services",
            VpcId=Ref(vpc),
            SecurityGroupEgress=[
                ec2.SecurityGroupRule(
                    IpProtocol="tcp",
                    FromPort=HTTPS_PORT,
                    ToPort=HTTPS_PORT,
                    CidrIp="0.0.0.0/0",
                    Description="HTTPS to AWS APIs, ECR, OpenAI, Confluence and Jira",
                )
            ],
            Tags=name_tags(cfg.names("tasks")),
        )
    )
    for logical_id, description, port, name in (
        (DATABASE_SG, "PostgreSQL from the ECS tasks only", POSTGRES_PORT, "db"),
        (FILE_SYSTEM_SG, "NFS (EFS) from the ECS tasks only", NFS_PORT, "efs"),
        (CACHE_SG, "Redis (ElastiCache) from the ECS tasks only", REDIS_PORT, "cache"),
    ):
        sg = t.add_resource(
            ec2.SecurityGroup(
                logical_id,
                GroupDescription=description,
                VpcId=Ref(vpc),
                SecurityGroupEgress=[_NO_EGRESS],
                Tags=name_tags(cfg.names(name)),
            )
        )
        allow_tcp(
            t,
            (f"{logical_id}IngressFromTasks", f"{TASK_SG}EgressTo{logical_id}"),
            GetAtt(task_sg, "GroupId"),
            GetAtt(sg, "GroupId"),
            port,
            (f"{description.split(' from')[0]} from ECS tasks", f"ECS tasks to {name} on {port}"),
        )
