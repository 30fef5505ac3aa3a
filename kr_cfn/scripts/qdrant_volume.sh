# First boot of the qdrant host (storage ebs). The template puts the variables above this line:
# VOLUME_ID, CLUSTER, REGION, MOUNT (host path qdrant's task mounts), OWNER (uid:gid of the data).
# KR_ROOT (unset on the host) lets the tests run the script against a scratch directory.
#
# 1. Attach the data stack's volume; when the instance replaces another, wait until the old one
#    has let go of it (a volume attaches to one instance at a time, in its own AZ).
# 2. Format it only when it holds nothing (a new volume); a volume with a file system, e.g. one
#    restored from a snapshot, is mounted as it is.
# 3. Mount it (fstab by UUID, so reboots mount it again), then join the ECS cluster with the
#    attribute that the qdrant service's placement constraint asks for: without a mounted
#    volume qdrant is never placed here, so it can never write to the root disk instead.
set -euo pipefail
root=${KR_ROOT:-}
exec > >(tee -a "$root/var/log/kr-qdrant-volume.log") 2>&1

log() { printf 'kr-qdrant-volume: %s\n' "$*"; }
die() { log "ERROR: $*"; exit 1; }

command -v aws >/dev/null || dnf install -y awscli-2
imds() {
    local token
    token=$(curl -fsS -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')
    curl -fsS -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
instance=$(imds instance-id)

attached=""
for attempt in $(seq 1 120); do
    read -r state attached < <(aws ec2 describe-volumes --region "$REGION" --volume-ids "$VOLUME_ID" \
        --query 'Volumes[0].[State, Attachments[0].InstanceId]' --output text)
    if [ "$state" = in-use ] && [ "$attached" = "$instance" ]; then
        break
    fi
    if [ "$state" = available ]; then
        aws ec2 attach-volume --region "$REGION" --volume-id "$VOLUME_ID" --instance-id "$instance" \
            --device /dev/xvdf >/dev/null || log "attach-volume failed, retrying"
    fi
    log "waiting for $VOLUME_ID (state $state, attached to $attached), attempt $attempt"
    sleep 10
done
[ "$attached" = "$instance" ] || die "$VOLUME_ID did not attach to $instance"

# Nitro instances show EBS volumes as NVMe devices whose id names the volume; others as xvdf
# (https://docs.aws.amazon.com/ebs/latest/userguide/nvme-ebs-volumes.html).
device=""
for attempt in $(seq 1 60); do
    for candidate in "$root/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${VOLUME_ID//-/}" "$root/dev/xvdf"; do
        if [ -e "$candidate" ]; then
            device=$(readlink -f "$candidate")
            break 2
        fi
    done
    log "waiting for the block device of $VOLUME_ID, attempt $attempt"
    sleep 2
done
[ -n "$device" ] || die "no block device for $VOLUME_ID"

# blkid -p exits 2 when it finds no file system and no partition table: only then format.
probe=0
blkid -p "$device" >/dev/null 2>&1 || probe=$?
case "$probe" in
    0) log "$device holds data; mounting it as it is" ;;
    2)
        log "$device is empty; creating an XFS file system"
        mkfs.xfs -L qdrant-data "$device"
        ;;
    *) die "blkid could not read $device (exit $probe); not formatting it" ;;
esac

uuid=$(blkid -s UUID -o value "$device")
mkdir -p "$root$MOUNT"
grep -q "UUID=$uuid " "$root/etc/fstab" || printf 'UUID=%s %s xfs defaults,nofail 0 2\n' "$uuid" "$MOUNT" >>"$root/etc/fstab"
mountpoint -q "$MOUNT" || mount "$MOUNT"
chown "$OWNER" "$root$MOUNT"
log "$VOLUME_ID ($device) mounted at $MOUNT"

# Agent settings: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-agent-config.html
cat >>"$root/etc/ecs/ecs.config" <<CONFIG
ECS_CLUSTER=$CLUSTER
ECS_AWSVPC_BLOCK_IMDS=true
ECS_INSTANCE_ATTRIBUTES={"kr-cfn.qdrant-volume":"mounted"}
CONFIG
# --no-block: the agent's unit may wait for cloud-init, which runs this script.
systemctl restart --no-block ecs.service
log "joined cluster $CLUSTER"
