# Prometheus targets from Cloud Map's API: every registered instance, not DNS's eight.
#
# A MULTIVALUE Cloud Map service answers DNS queries with at most eight records ("Route 53
# responds to DNS queries with IP addresses for up to eight healthy instances",
# https://docs.aws.amazon.com/cloud-map/latest/api/API_DnsConfig.html), so dns_sd_configs misses
# tasks beyond eight. DiscoverInstances returns up to MaxResults (at most 1000) instances
# (https://docs.aws.amazon.com/cloud-map/latest/api/API_DiscoverInstances.html); this loop writes
# them as Prometheus file_sd targets, which Prometheus re-reads when a file changes
# (https://prometheus.io/docs/prometheus/latest/configuration/configuration/#file_sd_config).
#
# KR_SD_TARGETS: space-separated JOB=SERVICE.NAMESPACE:PORT (the services' Cloud Map names)
# KR_SD_DIR:     where JOB.json goes (a volume Prometheus mounts read-only)
# KR_SD_INTERVAL: seconds between rounds; argument "once": one round, exit 1 if a lookup failed
set -uo pipefail

discover() {  # JOB HOST PORT: write $KR_SD_DIR/JOB.json atomically (rename), or keep the last one
    local job=$1 service=${2%%.*} namespace=${2#*.} port=$3 tmp
    tmp=$(mktemp "$KR_SD_DIR/.$job.XXXXXX") || return 1
    if aws servicediscovery discover-instances --namespace-name "$namespace" --service-name "$service" \
        --health-status HEALTHY_OR_ELSE_ALL --max-results 1000 --output json \
        --query "[{targets: Instances[].join(':', [Attributes.AWS_INSTANCE_IPV4, '$port']), labels: {cloud_map_service: '$service'}}]" \
        >"$tmp"; then
        chmod 0644 "$tmp" && mv -f "$tmp" "$KR_SD_DIR/$job.json"
    else
        rm -f "$tmp"
        echo "discovery of $job ($service.$namespace) failed; Prometheus keeps the last targets" >&2
        return 1
    fi
}

round() {
    local failed=0 spec job address
    for spec in $KR_SD_TARGETS; do
        job=${spec%%=*} address=${spec#*=}
        discover "$job" "${address%:*}" "${address##*:}" || failed=1
    done
    return $failed
}

if [ "${1:-}" = once ]; then
    round
    exit
fi
while true; do
    round
    sleep "${KR_SD_INTERVAL:-30}"
done
