# shellcheck shell=bash disable=SC2034  # the scripts that source this file read these
# Every name and setting the deploy scripts use, with its default. Override any of them from the
# environment (REGION=europe-west1 deploy/setup.sh). cloudbuild.yaml repeats these defaults as
# substitutions; tests/deploy checks that the two lists agree.

PROJECT_ID="${PROJECT_ID:-${CLOUDSDK_CORE_PROJECT:-}}"
REGION="${REGION:-us-central1}"

# Artifact Registry (Docker format) holding both images. Its cleanup policy keeps the last
# AR_KEEP_IMAGES images of each service and deletes older ones: a rollback can go back that far.
AR_REPOSITORY="${AR_REPOSITORY:-ride-duration}"
AR_KEEP_IMAGES="${AR_KEEP_IMAGES:-10}"
# Days a build's uploaded source stays in the source bucket (a build reads it once, at start).
BUILD_SOURCE_RETENTION_DAYS="${BUILD_SOURCE_RETENTION_DAYS:-7}"

# Cloud Run services.
BACKEND_SERVICE="${BACKEND_SERVICE:-ride-backend}"
PREDICTOR_SERVICE="${PREDICTOR_SERVICE:-ride-predictor}"

# One service account per identity (6-30 characters each).
BACKEND_SA_ID="${BACKEND_SA_ID:-ride-backend}"
PREDICTOR_SA_ID="${PREDICTOR_SA_ID:-ride-predictor}"
PUSH_INVOKER_SA_ID="${PUSH_INVOKER_SA_ID:-ride-push-invoker}"
DEPLOYER_SA_ID="${DEPLOYER_SA_ID:-ride-deployer}"

# Topics, named as the services read them (DESIGN.md).
# BACKEND_PUSH_STREAM and BACKEND_PULL_STREAM, the names of earlier releases, still count.
RIDES_TOPIC="${RIDES_TOPIC:-${BACKEND_PUSH_STREAM:-ride-data-push}}"
RESULTS_TOPIC="${RESULTS_TOPIC:-${BACKEND_PULL_STREAM:-ride-duration-pull}}"
DEAD_LETTER_TOPIC="${DEAD_LETTER_TOPIC:-ride-data-dead-letter}"

# The push subscription feeding the predictor and the one keeping dead letters for inspection.
PUSH_SUBSCRIPTION="${PUSH_SUBSCRIPTION:-ride-data-push-sub}"
DEAD_LETTER_SUBSCRIPTION="${DEAD_LETTER_SUBSCRIPTION:-ride-data-dead-letter-sub}"
# A candidate model's shadow (deploy/ship_model.sh): its push subscription, and the topic its
# answers go to, which no rider reads.
SHADOW_SUBSCRIPTION="${SHADOW_SUBSCRIPTION:-ride-data-shadow-sub}"
SHADOW_RESULTS_TOPIC="${SHADOW_RESULTS_TOPIC:-ride-duration-shadow}"
# Pub/Sub waits this long for the predictor's answer before counting a failed delivery; the
# same value is the predictor's Cloud Run request timeout (rollout_predictor.sh sets both). A push
# that wakes the predictor from zero waits for the whole start-up: scheduling and image pull,
# then up to 240 s of startup probe while the model loads, then the prediction. 360 s covers that
# in one attempt, so a cold start spends none of MAX_DELIVERY_ATTEMPTS (docs/deploy.md has the
# arithmetic). Pub/Sub allows at most 600 s, and uses it as the push request's timeout:
# https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions
# Start-up counts against the request timeout of the request that started the instance:
# https://cloud.google.com/run/docs/reference/container-contract
PUSH_ACK_DEADLINE_S="${PUSH_ACK_DEADLINE_S:-360}"
# Back-off between redeliveries of a failed push (Pub/Sub allows 0-600 s).
PUSH_MIN_RETRY_DELAY_S="${PUSH_MIN_RETRY_DELAY_S:-10}"
PUSH_MAX_RETRY_DELAY_S="${PUSH_MAX_RETRY_DELAY_S:-600}"
# After this many failed deliveries a message moves to the dead-letter topic (Pub/Sub: 5-100).
MAX_DELIVERY_ATTEMPTS="${MAX_DELIVERY_ATTEMPTS:-5}"
# How long the push and recorder subscriptions keep unacked messages: Pub/Sub's default, 7 days
# (it allows 10 minutes to 31 days).
# https://cloud.google.com/pubsub/docs/subscription-properties#message_retention_duration
MESSAGE_RETENTION_S="${MESSAGE_RETENTION_S:-604800}"
# How long the dead-letter subscription keeps dead letters nobody has acked: Pub/Sub's maximum,
# 31 days. Unacked messages older than a day are billed as storage (docs/deploy.md).
DEAD_LETTER_RETENTION_S="${DEAD_LETTER_RETENTION_S:-2678400}"

# The pull subscription on the results topic that every backend instance shares, without a
# filter: Pub/Sub hands each result to one instance, which records it in Firestore and then acks,
# so a result whose instance died still reaches its ride.
RECORDER_SUBSCRIPTION="${RECORDER_SUBSCRIPTION:-ride-duration-pull-recorder}"

# Firestore (Native mode) holding one document per ride, which every backend instance reads.
# A database's location cannot change once it exists; by default it sits beside the services.
FIRESTORE_DATABASE="${FIRESTORE_DATABASE:-(default)}"
FIRESTORE_LOCATION="${FIRESTORE_LOCATION:-$REGION}"
RIDES_COLLECTION="${RIDES_COLLECTION:-rides}"
# The backend writes each ride's expire_at as its creation time plus this many days, and the TTL
# policy deletes it after that. The backend reads the build's value (cloudbuild.yaml).
RIDE_RETENTION_DAYS="${RIDE_RETENTION_DAYS:-7}"

# Secret Manager secrets holding the MLflow S3 artifact store's AWS keys.
SECRET_AWS_ACCESS_KEY_ID="${SECRET_AWS_ACCESS_KEY_ID:-mlflow-aws-access-key-id}"
SECRET_AWS_SECRET_ACCESS_KEY="${SECRET_AWS_SECRET_ACCESS_KEY:-mlflow-aws-secret-access-key}"

# Custom role letting the backend create, read from and delete its own results subscriptions.
BACKEND_ROLE_ID="${BACKEND_ROLE_ID:-rideBackendResultsSubscriber}"
# Custom role letting the deployer read and repoint the push subscription, and nothing else.
DEPLOYER_ROLE_ID="${DEPLOYER_ROLE_ID:-ridePushSubscriptionUpdater}"
# Custom role letting the deployer deploy the two services and set their IAM policies, on the
# project (the services do not exist before the first build), in place of roles/run.admin.
DEPLOYER_RUN_ROLE_ID="${DEPLOYER_RUN_ROLE_ID:-rideServiceDeployer}"

# Derived names: not meant to be overridden.
sa_email() { printf '%s@%s.iam.gserviceaccount.com' "$1" "$PROJECT_ID"; }
BACKEND_SA="$(sa_email "$BACKEND_SA_ID")"
PREDICTOR_SA="$(sa_email "$PREDICTOR_SA_ID")"
PUSH_INVOKER_SA="$(sa_email "$PUSH_INVOKER_SA_ID")"
DEPLOYER_SA="$(sa_email "$DEPLOYER_SA_ID")"
# `gcloud builds submit` stages the source here by default; the deployer must read it. gcloud
# names it from the project id with ':' and '.' (domain-scoped ids such as example.com:rides)
# turned into '_' and 'google', which bucket names may not contain, into 'elgoog'; a build
# that names no --region or regional bucket behaviour uses this global name. Source:
# googlecloudsdk/command_lib/builds/staging_bucket_util.py, GetDefaultStagingBucket (SDK 528).
build_bucket_project="${PROJECT_ID//[:.]/_}"
BUILD_SOURCE_BUCKET="gs://${build_bucket_project//google/elgoog}_cloudbuild"
