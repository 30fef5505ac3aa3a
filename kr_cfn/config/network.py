"""Network section (``network:``) and the network stack's slice."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Literal

from pydantic import Field

from kr_cfn.config.base import Model, Problem
from kr_cfn.config.flows import Flow
from kr_cfn.naming import Naming


class NetworkConfig(Model):
    """The VPC, its subnets and (optionally) private subnets behind NAT gateways."""

    vpc_cidr: IPv4Network = Field(IPv4Network("10.0.0.0/16"), description="VPC CIDR block.")
    public_subnet_cidrs: tuple[IPv4Network, ...] = Field(
        (IPv4Network("10.0.1.0/24"), IPv4Network("10.0.2.0/24")),
        description="One public subnet per AZ, in the region's first AZs (one per entry, >= 2).",
    )
    private_subnets: bool = Field(
        False,
        description="Run tasks and data in private subnets behind NAT (the plan's production advice).",
    )
    private_subnet_cidrs: tuple[IPv4Network, ...] = Field(
        (IPv4Network("10.0.11.0/24"), IPv4Network("10.0.12.0/24")),
        description="Private subnets, one per public subnet's AZ; used when private_subnets is true.",
    )
    nat_gateways: Literal["one", "per_az"] = Field(
        "one", description="With private_subnets: one shared NAT gateway, or one per AZ for AZ-independence."
    )

    @property
    def az_count(self) -> int:
        """How many AZs the network spans (one public subnet each)."""
        return len(self.public_subnet_cidrs)

    def check(self) -> list[Problem]:
        """Subnets: enough AZs, inside the VPC, no overlaps, sizes AWS accepts."""
        problems: list[Problem] = []
        if self.az_count < 2:
            problems.append(("public_subnet_cidrs", f"needs at least 2 subnets (one per AZ), got {self.az_count}"))
        subnets = [(f"public_subnet_cidrs[{i}]", c) for i, c in enumerate(self.public_subnet_cidrs)]
        if self.private_subnets:
            if len(self.private_subnet_cidrs) != self.az_count:
                problems.append(
                    (
                        "private_subnet_cidrs",
                        f"needs one subnet per public subnet ({self.az_count}), got {len(self.private_subnet_cidrs)}",
                    )
                )
            subnets += [(f"private_subnet_cidrs[{i}]", c) for i, c in enumerate(self.private_subnet_cidrs)]
        for i, (key, cidr) in enumerate(subnets):
            if not cidr.subnet_of(self.vpc_cidr):
                problems.append((key, f"{cidr} is outside vpc_cidr {self.vpc_cidr}"))
            elif cidr.prefixlen > 28:
                problems.append((key, f"{cidr} is smaller than /28, the smallest subnet AWS allows"))
            for other_key, other in subnets[:i]:
                if cidr.overlaps(other):
                    problems.append((key, f"{cidr} overlaps {other_key} {other}"))
        if not 16 <= self.vpc_cidr.prefixlen <= 28:
            problems.append(("vpc_cidr", f"{self.vpc_cidr} must have a prefix between /16 and /28"))
        return problems


@dataclass(frozen=True)
class NetworkSlice:
    """What the network stack may see."""

    names: Naming
    network: NetworkConfig
    services: tuple[str, ...] = ()
    """The services the ecs stack renders: one security group each."""
    flows: tuple[Flow, ...] = ()
    """Who talks to whom (see kr_cfn.config.flows): the only rules between the groups."""
