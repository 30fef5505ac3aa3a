# The public images the stacks run, one pin each: read by kr_cfn.config.images (the defaults of
# services.<name>.image and the AWS CLI jobs), bumped by Dependabot's docker ecosystem
# (.github/dependabot.yml). Never built: a FROM per image, named by its use.
# Versions, release dates, support windows and upgrade paths: docs/runbook.md, "Images and upgrades".
FROM qdrant/qdrant:v1.19.1-unprivileged AS qdrant
FROM redis:7.2.4-alpine AS redis
FROM prom/prometheus:v3.13.3 AS prometheus
FROM grafana/grafana:13.2.1 AS grafana
FROM public.ecr.aws/aws-cli/aws-cli:2.36.4 AS aws-cli
