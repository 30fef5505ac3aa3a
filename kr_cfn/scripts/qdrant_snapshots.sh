# Qdrant collection snapshots to and from S3, run as an ECS task of the stock AWS CLI image
# (bash, curl, aws). The task definition sets QDRANT_URL, BUCKET, PREFIX (and QDRANT_API_KEY
# when Qdrant wants one); the task role may write and read s3://$BUCKET/$PREFIX/* only.
#
#   snapshot                    every collection -> s3://$BUCKET/$PREFIX/<UTC time>/<collection>.snapshot
#   restore KEY [COLLECTION]    s3://$BUCKET/KEY -> COLLECTION (default: the key's file name)
#
# Qdrant API (https://qdrant.tech/documentation/concepts/snapshots/): GET /collections,
# POST /collections/{c}/snapshots, GET and DELETE /collections/{c}/snapshots/{name},
# POST /collections/{c}/snapshots/upload?priority=snapshot (multipart field "snapshot").
set -euo pipefail

log() { printf 'kr-qdrant: %s\n' "$*"; }
die() { log "ERROR: $*"; exit 1; }

: "${QDRANT_URL:?QDRANT_URL is not set}" "${BUCKET:?BUCKET is not set}"
PREFIX=${PREFIX:-qdrant}
command -v curl >/dev/null || die "curl is missing from the image"
command -v aws >/dev/null || die "the AWS CLI is missing from the image"

qdrant() {
    local args=(-fsS)
    if [ -n "${QDRANT_API_KEY:-}" ]; then
        args+=(-H "api-key: $QDRANT_API_KEY")
    fi
    curl "${args[@]}" "$@"
}

# Percent-encode a collection name for the URL path.
urlencode() {
    local s=$1 out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case "$c" in
            [A-Za-z0-9._~-]) out+=$c ;;
            *) printf -v c '%%%02X' "'$c" && out+=$c ;;
        esac
    done
    printf '%s' "$out"
}

# The "name" values of a Qdrant JSON answer, one per line (none: no output, still success).
names() { { grep -o '"name" *: *"[^"]*"' || true; } | sed -e 's/^"name" *: *"//' -e 's/"$//'; }

snapshot() {
    local stamp answer collections count=0 c path name
    stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
    answer=$(qdrant "$QDRANT_URL/collections") || die "cannot list the collections at $QDRANT_URL"
    collections=$(names <<<"$answer")
    # No names is only fine when Qdrant said so: an answer we cannot read must not pass as "0 collections".
    if [ -z "$collections" ] && ! grep -q '"collections" *: *\[ *\]' <<<"$answer"; then
        die "cannot read the collections from Qdrant's answer: $answer"
    fi
    while IFS= read -r c; do
        [ -n "$c" ] || continue
        path="$QDRANT_URL/collections/$(urlencode "$c")/snapshots"
        name=$(qdrant -X POST "$path?wait=true" | names | head -n 1) || die "snapshot of $c failed"
        [ -n "$name" ] || die "Qdrant named no snapshot for $c"
        qdrant "$path/$(urlencode "$name")" | aws s3 cp - "s3://$BUCKET/$PREFIX/$stamp/$c.snapshot" ||
            die "upload of $c failed"
        # The snapshot stays on Qdrant's disk until deleted; S3 keeps the copy.
        qdrant -X DELETE "$path/$(urlencode "$name")" >/dev/null || log "could not delete $name from Qdrant"
        log "$c -> s3://$BUCKET/$PREFIX/$stamp/$c.snapshot"
        count=$((count + 1))
    done <<<"$collections"
    log "snapshot ok: $count collection(s) in s3://$BUCKET/$PREFIX/$stamp/"
}

restore() {
    local key=${1:?usage: restore KEY [COLLECTION]} collection
    case "$key" in
        "$PREFIX"/*.snapshot) ;;
        *) die "$key is not a snapshot key under $PREFIX/ (e.g. $PREFIX/2026-01-31T030000Z/docs.snapshot)" ;;
    esac
    collection=${2:-$(basename "$key" .snapshot)}
    RESTORE_FILE=$(mktemp "${TMPDIR:-/tmp}/qdrant.XXXXXX")
    trap 'rm -f "$RESTORE_FILE"' EXIT
    aws s3 cp --no-progress "s3://$BUCKET/$key" "$RESTORE_FILE" >/dev/null || die "cannot read s3://$BUCKET/$key"
    qdrant -X POST -F "snapshot=@$RESTORE_FILE" \
        "$QDRANT_URL/collections/$(urlencode "$collection")/snapshots/upload?priority=snapshot&wait=true" >/dev/null ||
        die "Qdrant refused the snapshot for $collection"
    log "restore ok: s3://$BUCKET/$key -> collection $collection"
}

case "${1:-}" in
    snapshot) snapshot ;;
    restore) shift && restore "$@" ;;
    *) die "usage: snapshot | restore KEY [COLLECTION]" ;;
esac
