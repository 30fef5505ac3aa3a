"""Params validation: one test per error, asserting the exact message."""

from __future__ import annotations

from pathlib import Path

import pytest

from kr_cfn import config
from tests.conftest import ENVS, load_env, write_params


def _errors(tmp_path: Path, text: str, env: str = "prod") -> list[str]:
    path = write_params(tmp_path, env, text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    prefix = f"{path}: "
    lines = str(exc.value).splitlines()
    assert all(line.startswith(prefix) for line in lines)
    return [line[len(prefix) :] for line in lines]


@pytest.mark.parametrize("env", ENVS)
def test_shipped_params_load(env: str) -> None:
    assert load_env(env).env == env


def test_defaults_follow_the_architecture() -> None:
    cfg = config.EnvConfig(env="x")
    assert str(cfg.network.vpc_cidr) == "10.0.0.0/16"
    assert [str(c) for c in cfg.network.public_subnet_cidrs] == ["10.0.1.0/24", "10.0.2.0/24"]
    assert cfg.region == "eu-central-1"
    assert cfg.names("cluster") == "knowledgerouter-x-cluster"


def test_prod_keeps_the_plans_names() -> None:
    assert load_env("prod").names("cluster") == "knowledgerouter-cluster"
    assert load_env("dev").names("cluster") == "knowledgerouter-dev-cluster"


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    cfg = config.load(write_params(tmp_path, "dev", ""))
    assert cfg.env == "dev" and not cfg.network.private_subnets


def test_subnet_outside_vpc(tmp_path: Path) -> None:
    text = "network:\n  public_subnet_cidrs: [10.0.1.0/24, 10.1.2.0/24]\n"
    assert _errors(tmp_path, text) == ["network.public_subnet_cidrs[1]: 10.1.2.0/24 is outside vpc_cidr 10.0.0.0/16"]


def test_overlapping_subnets(tmp_path: Path) -> None:
    text = "network:\n  private_subnets: true\n  private_subnet_cidrs: [10.0.1.0/24, 10.0.12.0/24]\n"
    assert _errors(tmp_path, text) == [
        "network.private_subnet_cidrs[0]: 10.0.1.0/24 overlaps public_subnet_cidrs[0] 10.0.1.0/24"
    ]


def test_overlap_ignored_when_private_subnets_off(tmp_path: Path) -> None:
    text = "network:\n  private_subnet_cidrs: [10.0.1.0/24, 10.0.12.0/24]\n"
    assert config.load(write_params(tmp_path, "prod", text)).network.private_subnets is False


def test_one_az_is_not_enough(tmp_path: Path) -> None:
    text = "network:\n  public_subnet_cidrs: [10.0.1.0/24]\n"
    assert _errors(tmp_path, text) == ["network.public_subnet_cidrs: needs at least 2 subnets (one per AZ), got 1"]


def test_private_subnet_count_must_match(tmp_path: Path) -> None:
    text = "network:\n  private_subnets: true\n  private_subnet_cidrs: [10.0.11.0/24]\n"
    assert _errors(tmp_path, text) == ["network.private_subnet_cidrs: needs one subnet per public subnet (2), got 1"]


def test_invalid_cidr(tmp_path: Path) -> None:
    text = "network:\n  vpc_cidr: 10.0.0.1/16\n"
    assert _errors(tmp_path, text) == ["network.vpc_cidr: input is not a valid IPv4 network, got '10.0.0.1/16'"]


def test_vpc_prefix_range(tmp_path: Path) -> None:
    text = "network:\n  vpc_cidr: 10.0.0.0/8\n"
    assert _errors(tmp_path, text) == ["network.vpc_cidr: 10.0.0.0/8 must have a prefix between /16 and /28"]


def test_tiny_subnet(tmp_path: Path) -> None:
    text = "network:\n  public_subnet_cidrs: [10.0.1.0/29, 10.0.2.0/24]\n"
    assert _errors(tmp_path, text) == [
        "network.public_subnet_cidrs[0]: 10.0.1.0/29 is smaller than /28, the smallest subnet AWS allows"
    ]


def test_unknown_key_did_you_mean(tmp_path: Path) -> None:
    text = "network:\n  vpc_cdir: 10.0.0.0/16\n"
    assert _errors(tmp_path, text) == ["network.vpc_cdir: unknown key (did you mean 'vpc_cidr'?)"]


def test_unknown_key_without_close_match(tmp_path: Path) -> None:
    assert _errors(tmp_path, "zzz: 1\n")[0].startswith("zzz: unknown key (expected one of: env, project, ")


def test_wrong_choice(tmp_path: Path) -> None:
    text = "network:\n  nat_gateways: two\n"
    assert _errors(tmp_path, text) == ["network.nat_gateways: input should be 'one' or 'per_az', got 'two'"]


def test_env_must_equal_file_name(tmp_path: Path) -> None:
    assert _errors(tmp_path, "env: production\n") == ["env: 'production' must equal the file name 'prod'"]


def test_reserved_tag(tmp_path: Path) -> None:
    assert _errors(tmp_path, "tags:\n  aws:owner: me\n") == [
        "tags.aws:owner: tag keys starting with 'aws:' are reserved by AWS"
    ]


def test_bad_name_prefix(tmp_path: Path) -> None:
    assert _errors(tmp_path, "name_prefix: Knowledge_Router\n") == [
        "name_prefix: string should match pattern '^[a-z][a-z0-9-]{0,30}[a-z0-9]$', got 'Knowledge_Router'"
    ]


def test_all_problems_reported_together(tmp_path: Path) -> None:
    text = "network:\n  public_subnet_cidrs: [10.2.1.0/24, 10.3.1.0/24]\n  nat_gatways: one\nregion: mars\n"
    errors = _errors(tmp_path, text)
    assert len(errors) == 2  # type errors first; cross-field checks run once the types are right
    assert errors[0] == "region: string should match pattern '^[a-z]{2}(-gov)?-[a-z]+-\\d$', got 'mars'"
    assert errors[1] == "network.nat_gatways: unknown key (did you mean 'nat_gateways'?)"


def test_cross_field_problems_reported_together(tmp_path: Path) -> None:
    text = "network:\n  public_subnet_cidrs: [10.2.1.0/24, 10.3.1.0/24]\n"
    assert _errors(tmp_path, text) == [
        "network.public_subnet_cidrs[0]: 10.2.1.0/24 is outside vpc_cidr 10.0.0.0/16",
        "network.public_subnet_cidrs[1]: 10.3.1.0/24 is outside vpc_cidr 10.0.0.0/16",
    ]


def test_invalid_yaml(tmp_path: Path) -> None:
    assert _errors(tmp_path, "network:\n  vpc_cidr: [\n") == [
        "line 3: invalid YAML: expected the node content, but found '<stream end>'"
    ]


def test_duplicate_key(tmp_path: Path) -> None:
    assert _errors(tmp_path, "env: prod\nenv: prod\n") == ["line 2: invalid YAML: duplicate key 'env'"]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert _errors(tmp_path, "- a\n") == ["expected a mapping of settings at the top level, got list"]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match=r"missing\.yaml: cannot read file: No such file or directory"):
        config.load(tmp_path / "missing.yaml")


def test_pascal_names_for_logical_ids() -> None:
    from kr_cfn.naming import pascal

    assert pascal("backend") == "Backend"
    assert pascal("knowledge-worker") == "KnowledgeWorker"
    assert pascal("rag_indexer") == "RagIndexer"


def test_github_repository_must_be_owner_and_name(tmp_path: Path) -> None:
    assert _errors(tmp_path, "bootstrap:\n  github_repository: knowledgerouter\n") == [
        "bootstrap.github_repository: 'knowledgerouter' must be 'owner/name' (the GitHub owner and repository)"
    ]


def test_github_repository_owner_cannot_start_with_a_dash(tmp_path: Path) -> None:
    assert _errors(tmp_path, "bootstrap:\n  github_repository: -acme/infra\n") == [
        "bootstrap.github_repository: '-acme/infra' must be 'owner/name' (the GitHub owner and repository)"
    ]


def test_repository_name(tmp_path: Path) -> None:
    assert _errors(tmp_path, "bootstrap:\n  repositories: [backend, Front_End]\n") == [
        "bootstrap.repositories[1]: 'Front_End' must be lowercase letters, digits and dashes"
    ]


def test_repository_listed_twice(tmp_path: Path) -> None:
    assert _errors(tmp_path, "bootstrap:\n  repositories: [backend, backend]\n") == [
        "bootstrap.repositories[1]: 'backend' is listed twice"
    ]


def test_images_to_keep_at_least_one(tmp_path: Path) -> None:
    assert _errors(tmp_path, "bootstrap:\n  images_to_keep: 0\n") == [
        "bootstrap.images_to_keep: input should be greater than or equal to 1, got 0"
    ]


def test_noncurrent_version_days_at_least_one(tmp_path: Path) -> None:
    assert _errors(tmp_path, "bootstrap:\n  noncurrent_version_days: 0\n") == [
        "bootstrap.noncurrent_version_days: input should be greater than or equal to 1, got 0"
    ]


def test_deploy_branch_pattern(tmp_path: Path) -> None:
    assert _errors(tmp_path, "bootstrap:\n  deploy_branch: 'main branch'\n") == [
        "bootstrap.deploy_branch: string should match pattern '^[A-Za-z0-9._/-]{1,100}$', got 'main branch'"
    ]


def test_termination_protection_is_a_boolean(tmp_path: Path) -> None:
    assert _errors(tmp_path, "deploy:\n  termination_protection: sometimes\n") == [
        "deploy.termination_protection: input should be a valid boolean, unable to interpret input, got 'sometimes'"
    ]


def test_prod_turns_on_termination_protection() -> None:
    assert load_env("prod").deploy.termination_protection is True
    assert load_env("dev").deploy.termination_protection is False


def test_data_defaults_follow_the_architecture() -> None:
    d = config.EnvConfig(env="x").data
    assert (d.db_instance_class, d.db_storage_gb, d.multi_az, d.backup_retention_days) == ("db.t3.micro", 20, True, 7)
    assert (d.deletion_protection, d.delete_with_stack) == (True, False)
    assert (d.data_ia_days, d.data_glacier_days, d.data_expire_days, d.backups_expire_days) == (30, 90, 365, 7)
    assert (d.redis, d.redis_node_type) == ("fargate", "cache.t3.micro")


def test_data_ia_transition_too_early(tmp_path: Path) -> None:
    assert _errors(tmp_path, "data:\n  data_ia_days: 10\n") == [
        "data.data_ia_days: 10 is below 30, the earliest S3 moves to STANDARD_IA"
    ]


def test_data_lifecycle_out_of_order(tmp_path: Path) -> None:
    assert _errors(tmp_path, "data:\n  data_glacier_days: 400\n") == [
        "data.data_glacier_days: 400 must lie between data_ia_days 30 and data_expire_days 365"
    ]


def test_delete_with_stack_needs_deletion_protection_off(tmp_path: Path) -> None:
    assert _errors(tmp_path, "data:\n  delete_with_stack: true\n") == [
        "data.delete_with_stack: true needs deletion_protection: false (a protected database cannot be deleted)"
    ]


def test_gp3_storage_minimum(tmp_path: Path) -> None:
    assert _errors(tmp_path, "data:\n  db_storage_gb: 10\n") == [
        "data.db_storage_gb: input should be greater than or equal to 20, got 10"
    ]


def test_engine_version_must_be_postgres_15(tmp_path: Path) -> None:
    assert _errors(tmp_path, "data:\n  db_engine_version: '16.4'\n") == [
        "data.db_engine_version: '16.4' is not PostgreSQL 15 (the parameter group family is postgres15); "
        "give the major version '15' (RDS creates its default minor)"
    ]


def test_engine_version_may_not_pin_a_minor(tmp_path: Path) -> None:
    """A pinned minor (the old default 15.13) stops being creatable once RDS deprecates it."""
    assert _errors(tmp_path, "data:\n  db_engine_version: '15.13'\n") == [
        "data.db_engine_version: '15.13' pins a minor version, which RDS stops creating once it deprecates it "
        "and automatic minor upgrades move past; give the major version '15' (RDS creates its default minor)"
    ]
    assert config.load(write_params(tmp_path, "dev", "data:\n  db_engine_version: '15'\n")).data.db_engine_version


def test_redis_choice(tmp_path: Path) -> None:
    assert _errors(tmp_path, "data:\n  redis: memcached\n") == [
        "data.redis: input should be 'fargate' or 'elasticache', got 'memcached'"
    ]


def test_name_prefix_too_long_for_bucket_names(tmp_path: Path) -> None:
    prefix = "a" * 32
    assert _errors(tmp_path, f"name_prefix: {prefix}\n") == [
        f"name_prefix: too long for the S3 bucket names ('{prefix}-backups-123456789012-eu-central-1' has 66 "
        "characters, the limit is 63)"
    ]


def test_db_log_retention_must_be_a_cloudwatch_value(tmp_path: Path) -> None:
    assert _errors(tmp_path, "data:\n  db_log_retention_days: 10\n") == [
        "data.db_log_retention_days: 10 is not a CloudWatch Logs retention (one of 1, 3, 5, 7, 14, 30, 60, 90, 120, "
        "150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)"
    ]


def test_deploy_branch_is_required_when_the_subject_names_the_ref(tmp_path: Path) -> None:
    text = "bootstrap:\n  github_repository: acme/infra\n  deploy_branch: null\n"
    assert _errors(tmp_path, text, "dev") == [
        "bootstrap.deploy_branch: must name the branch deploys run from when oidc_subject is 'environment_and_ref'"
    ]


def test_oidc_subject_is_one_of_the_two_layouts(tmp_path: Path) -> None:
    (line,) = _errors(tmp_path, "bootstrap:\n  oidc_subject: ref\n", "dev")
    assert line.startswith("bootstrap.oidc_subject: input should be 'environment_and_ref' or 'environment', got 'ref'")
