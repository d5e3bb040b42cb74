# shellcheck shell=bash
# Helpers shared by the deploy scripts: print or run a command, probe whether a resource exists.
#
# With DRY_RUN=1 every command that would change something is printed to stdout, one per line,
# quoted so that a shell (or shlex) reads it back; read-only probes are printed as `# check:`
# comments and treated as "missing", so the plan shows everything a first run would do and
# needs neither credentials nor a network.

DRY_RUN="${DRY_RUN:-0}"
# Never stop for a prompt: these scripts also run unattended in Cloud Build.
export CLOUDSDK_CORE_DISABLE_PROMPTS=1

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Print a command as one line a shell reads back as the same words.
quote_cmd() {
  local out="" arg
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
      out+="$arg "
    else
      out+="'${arg//\'/\'\\\'\'}' "
    fi
  done
  printf '%s\n' "${out% }"
}

# Say what comes next: a comment in the plan, a progress line on stderr otherwise.
note() {
  if [[ "$DRY_RUN" == 1 ]]; then printf '# %s\n' "$*"; else printf '== %s\n' "$*" >&2; fi
}

# Run a command that changes something, or only print it in a dry run.
run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    quote_cmd "$@"
    return 0
  fi
  printf '+ %s\n' "$(quote_cmd "$@")" >&2
  # gcloud prints the resulting resource or IAM policy on stdout; its status line on stderr is
  # what a reader of the log needs.
  "$@" >/dev/null
}

# Run like `run`, retrying a few times: IAM takes a while to learn of a service account created
# moments ago, and refuses bindings to it until then.
# https://cloud.google.com/iam/docs/service-accounts-create#creating
run_retrying() {
  local attempt delay
  for attempt in 1 2 3 4; do
    run "$@" && return 0
    delay=$((attempt * ${RETRY_DELAY_S:-5}))
    printf 'failed; retrying in %ss\n' "$delay" >&2
    sleep "$delay"
  done
  run "$@"
}

# Succeed when a read-only probe does; a dry run probes nothing and reports "missing".
exists() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '# check: %s\n' "$(quote_cmd "$@")"
    return 1
  fi
  "$@" >/dev/null 2>&1
}

# Print what a read-only query returns. A dry run returns nothing and notes the query on stderr,
# because callers capture stdout.
query() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '# check: %s\n' "$(quote_cmd "$@")" >&2
    return 0
  fi
  "$@" 2>/dev/null
}

# Print the value of NAME in TEXT's NAME=value lines (deploy/model_alias.py pin's output).
line_value() {
  local line
  while IFS= read -r line; do
    if [[ "$line" == "$1="* ]]; then printf '%s\n' "${line#"$1="}"; fi
  done <<<"$2"
}
