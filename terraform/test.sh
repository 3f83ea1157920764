#!/usr/bin/env bash
# The terraform suite of scripts/test.sh: fmt, init, validate and `terraform test` (mocked AWS
# provider, plan only) where a Terraform CLI and the pinned AWS provider are on this machine; then
# checkov on terraform/ and shellcheck on user_data.sh and scripts/*.sh, always.
#
# The provider is found without a network: $TF_PLUGIN_DIR, else the first of the usual plugin folders
# (/opt/tf-plugins, ~/.terraform.d/plugins, /usr/local/share/terraform/plugins,
# /usr/share/terraform/plugins) that holds registry.terraform.io/hashicorp/aws/<pinned version>.
# Checkov comes from tools/checkov/venv and shellcheck from Debian; scripts/install.sh installs both.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
version="$(sed -n 's/^ *version *= *"\([0-9.]*\)".*/\1/p' "$here/versions.tf" | head -n 1)"
failed=()
part() {
  local name="$1"
  shift
  printf -- '--> %s\n' "$name" >&2
  if "$@"; then printf -- '--> %s: ok\n' "$name" >&2; else
    failed+=("$name")
    printf -- '--> %s: FAILED\n' "$name" >&2
  fi
}

plugin_dir=""
for d in "${TF_PLUGIN_DIR:-}" /opt/tf-plugins "$HOME/.terraform.d/plugins" /usr/local/share/terraform/plugins \
  /usr/share/terraform/plugins; do
  if [[ -n $d && -d $d/registry.terraform.io/hashicorp/aws/$version ]]; then plugin_dir="$d" && break; fi
done

if ! command -v terraform >/dev/null; then
  echo "terraform suite: no terraform CLI on this machine: skipping fmt, validate and test (checkov and shellcheck still run)" >&2
elif [[ -z $plugin_dir ]]; then
  echo "terraform suite: AWS provider $version not found in a local plugin folder (set TF_PLUGIN_DIR): skipping fmt, validate and test (checkov and shellcheck still run)" >&2
else
  # A throwaway data dir keeps the work tree clean; the committed lock file must match as it is.
  TF_DATA_DIR="$(mktemp -d)"
  export TF_DATA_DIR TF_IN_AUTOMATION=1 TF_CLI_CONFIG_FILE=/dev/null
  trap 'rm -rf "$TF_DATA_DIR"' EXIT
  tf() { terraform -chdir="$here" "$@"; }
  echo "terraform suite: $(terraform version | head -n 1), provider from $plugin_dir" >&2
  part "terraform fmt -check -recursive" tf fmt -check -recursive -diff
  if part "terraform init (offline, $plugin_dir)" \
    tf init -backend=false -input=false -no-color -lockfile=readonly -plugin-dir="$plugin_dir" >/dev/null; then
    part "terraform validate" tf validate -no-color
    part "terraform test (mocked AWS provider)" tf test -no-color
  fi
fi

checkov="$repo/tools/checkov/venv/bin/checkov"
if [[ -x $checkov ]]; then
  # --skip-download: no call home for policies or metadata; every check runs from the package.
  part "checkov -d terraform/" "$checkov" -d "$here" --framework terraform --skip-download --compact --quiet
else
  failed+=("checkov")
  echo "--> checkov is not installed: run scripts/install.sh (tools/checkov/venv)" >&2
fi

if command -v shellcheck >/dev/null; then
  part "shellcheck" shellcheck "$here/user_data.sh" "$here/test.sh" "$repo"/scripts/*.sh
else
  failed+=("shellcheck")
  echo "--> shellcheck is not installed: run scripts/install.sh (apt-get install shellcheck)" >&2
fi

if ((${#failed[@]})); then
  echo "terraform suite: failed: ${failed[*]}" >&2
  exit 1
fi
echo "terraform suite: all parts passed" >&2
