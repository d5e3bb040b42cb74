# shellcheck shell=bash
# Firestore (Native mode): the database holding one document per ride, and the TTL policy that
# deletes each ride once its expire_at has passed. The backend's access to it lives in iam.sh.

# The Timestamp field the backend writes on every ride: its creation time + RIDE_RETENTION_DAYS.
RIDE_TTL_FIELD=expire_at
# Every field of a ride document (backend_service/firestore_rides.py). The backend reads rides by
# id and never queries a field, so none needs the single-field index Firestore keeps on every
# field by default; expire_at, a timestamp close to the write time on every ride, would make
# that index a write hotspot, which the TTL docs advise against for heavy writes:
# https://cloud.google.com/firestore/native/docs/ttl
RIDE_UNINDEXED_FIELDS="$RIDE_TTL_FIELD created_at fingerprint duration_coarse duration_final model_version results"

# How long setup waits for a database it has just created to answer, and how often it asks.
FIRESTORE_WAIT_S="${FIRESTORE_WAIT_S:-300}"
FIRESTORE_POLL_S="${FIRESTORE_POLL_S:-10}"

# Create the database in Native mode, or check the one that exists: neither its type nor its
# location can change.
ensure_firestore_database() {
  local type location
  if ! exists gcloud firestore databases describe --database="$FIRESTORE_DATABASE" \
    --project="$PROJECT_ID"; then
    run gcloud firestore databases create --database="$FIRESTORE_DATABASE" \
      --location="$FIRESTORE_LOCATION" --type=firestore-native --project="$PROJECT_ID"
    wait_for_firestore
    return
  fi
  IFS='|' read -r type location < <(
    query gcloud firestore databases describe --database="$FIRESTORE_DATABASE" \
      --project="$PROJECT_ID" --format="value[separator='|'](type,locationId)"
  ) || true
  # The backend speaks the Firestore API, which a Datastore-mode database does not serve.
  [[ -z "$type" || "$type" == FIRESTORE_NATIVE ]] ||
    die "Firestore database $FIRESTORE_DATABASE is $type, not FIRESTORE_NATIVE:" \
      "set FIRESTORE_DATABASE (and the build's _FIRESTORE_DATABASE) to another database id"
  if [[ -n "$location" && "$location" != "$FIRESTORE_LOCATION" ]]; then
    note "Firestore database $FIRESTORE_DATABASE stays in $location (not $FIRESTORE_LOCATION):" \
      "a database cannot move"
  fi
}

# Succeed once the database answers what the rest of setup asks it: its own description and
# its collection group's field settings.
firestore_answers() {
  exists gcloud firestore databases describe --database="$FIRESTORE_DATABASE" \
    --project="$PROJECT_ID" &&
    exists gcloud firestore fields ttls list --collection-group="$RIDES_COLLECTION" \
      --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID"
}

# `gcloud firestore databases create` returns before the database is ready, and field updates
# sent before then fail: wait until it answers, saying so, for at most FIRESTORE_WAIT_S.
wait_for_firestore() {
  local step="$FIRESTORE_POLL_S" waited=0 attempt attempts
  note "wait until database $FIRESTORE_DATABASE answers (at most ${FIRESTORE_WAIT_S}s)"
  if [[ "$DRY_RUN" == 1 ]]; then return 0; fi
  attempts=$((FIRESTORE_WAIT_S / (step > 0 ? step : 1) + 1))
  for ((attempt = 1; attempt <= attempts; attempt++)); do
    if firestore_answers; then
      printf '   database %s answers after %ss\n' "$FIRESTORE_DATABASE" "$waited" >&2
      return 0
    fi
    printf '   database %s is not ready yet: %ss of at most %ss\n' "$FIRESTORE_DATABASE" \
      "$waited" "$FIRESTORE_WAIT_S" >&2
    if ((attempt < attempts)); then
      sleep "$step"
      waited=$((waited + step))
    fi
  done
  die "Firestore database $FIRESTORE_DATABASE did not answer within ${FIRESTORE_WAIT_S}s:" \
    "run deploy/setup.sh again once it does (it carries on from there), or raise FIRESTORE_WAIT_S"
}

# Exempt a field of the rides from single-field indexing, unless it is already: an exempt field
# uses no inherited configuration and lists no index. The TTL field's exemption is waited for,
# since its TTL policy is the next change to that field; the others run in the background.
ensure_field_unindexed() {
  local field="$1" inherited indexes
  IFS='|' read -r inherited indexes < <(
    query gcloud firestore indexes fields describe "$field" --collection-group="$RIDES_COLLECTION" \
      --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID" \
      --format="value[separator='|'](indexConfig.usesAncestorConfig,indexConfig.indexes)"
  ) || true
  [[ "$inherited" != False || -n "$indexes" ]] || return 0
  if [[ "$field" == "$RIDE_TTL_FIELD" ]]; then
    run_retrying gcloud firestore indexes fields update "$field" \
      --collection-group="$RIDES_COLLECTION" --disable-indexes \
      --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID"
  else
    run_retrying gcloud firestore indexes fields update "$field" \
      --collection-group="$RIDES_COLLECTION" --disable-indexes \
      --database="$FIRESTORE_DATABASE" --async --project="$PROJECT_ID"
  fi
}

# Turn on the TTL policy on the rides' expire_at, unless it is on or being turned on. Turning it
# on takes ten minutes or more even on an empty database, so setup does not wait for it: a later
# run finds it CREATING and leaves it alone, or NEEDS_REPAIR (it failed) and asks again.
# https://cloud.google.com/firestore/native/docs/ttl
ensure_ride_ttl() {
  local name state
  while IFS='|' read -r name state; do
    [[ -n "$name" ]] || continue
    # Firestore allows one TTL field per collection group.
    [[ "${name##*/}" == "$RIDE_TTL_FIELD" ]] ||
      die "collection group $RIDES_COLLECTION already has a TTL policy on ${name##*/}:" \
        "disable it (gcloud firestore fields ttls update ${name##*/} --disable-ttl ...) first"
    case "$state" in ACTIVE | CREATING) return ;; esac
  done < <(
    query gcloud firestore fields ttls list --collection-group="$RIDES_COLLECTION" \
      --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID" \
      --format="value[separator='|'](name,ttlConfig.state)" || true
  )
  # Retried: a field's previous operation may still be finishing.
  run_retrying gcloud firestore fields ttls update "$RIDE_TTL_FIELD" \
    --collection-group="$RIDES_COLLECTION" --enable-ttl --database="$FIRESTORE_DATABASE" --async \
    --project="$PROJECT_ID"
}

setup_firestore() {
  [[ "$RIDE_RETENTION_DAYS" =~ ^[1-9][0-9]*$ ]] ||
    die "RIDE_RETENTION_DAYS=$RIDE_RETENTION_DAYS: use a whole number of days"
  note "Firestore database $FIRESTORE_DATABASE (Native mode) in $FIRESTORE_LOCATION for ride state"
  ensure_firestore_database
  note "no single-field index on $RIDE_UNINDEXED_FIELDS: nothing queries them, and an index on" \
    "$RIDE_TTL_FIELD would be a write hotspot"
  local field
  for field in $RIDE_UNINDEXED_FIELDS; do ensure_field_unindexed "$field"; done
  note "TTL policy on $RIDES_COLLECTION.$RIDE_TTL_FIELD: a ride expires $RIDE_RETENTION_DAYS days" \
    "after its creation (the build's _RIDE_RETENTION_DAYS) and is deleted typically within 24 h"
  ensure_ride_ttl
}
