# shellcheck shell=bash
# Firestore (Native mode): the database holding one document per ride, and the TTL policy that
# deletes each ride once its expire_at has passed. The backend's access to it lives in iam.sh.

# The Timestamp field the backend writes on every ride: its creation time + RIDE_RETENTION_DAYS.
RIDE_TTL_FIELD=expire_at

# Create the database in Native mode, or check the one that exists: neither its type nor its
# location can change.
ensure_firestore_database() {
  local type location
  if ! exists gcloud firestore databases describe --database="$FIRESTORE_DATABASE" \
    --project="$PROJECT_ID"; then
    run gcloud firestore databases create --database="$FIRESTORE_DATABASE" \
      --location="$FIRESTORE_LOCATION" --type=firestore-native --project="$PROJECT_ID"
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
  # Retried: `gcloud firestore databases create` returns its operation without waiting for it.
  run_retrying gcloud firestore fields ttls update "$RIDE_TTL_FIELD" \
    --collection-group="$RIDES_COLLECTION" --enable-ttl --database="$FIRESTORE_DATABASE" --async \
    --project="$PROJECT_ID"
}

setup_firestore() {
  [[ "$RIDE_RETENTION_DAYS" =~ ^[1-9][0-9]*$ ]] ||
    die "RIDE_RETENTION_DAYS=$RIDE_RETENTION_DAYS: use a whole number of days"
  note "Firestore database $FIRESTORE_DATABASE (Native mode) in $FIRESTORE_LOCATION for ride state"
  ensure_firestore_database
  note "TTL policy on $RIDES_COLLECTION.$RIDE_TTL_FIELD: a ride expires $RIDE_RETENTION_DAYS days" \
    "after its creation (the build's _RIDE_RETENTION_DAYS) and is deleted typically within 24 h"
  ensure_ride_ttl
}
