#!/usr/bin/env bash
# First-boot setup of the embbench host (cloud-init runs it once, as root). Terraform prepends the
# settings below as shell assignments (see main.tf, local.settings); nothing secret is among them.
#
#   EMBBENCH_REPO_URL, EMBBENCH_GIT_REF   what to clone into /home/ubuntu/embbench
#   EMBBENCH_MAX_HOURS                    cost guard: halt (so terminate) this long after first boot
#   EMBBENCH_AUTORUN                      "true": start `./embbench all` in tmux session "embbench"
#   EMBBENCH_REGION                       for the AWS CLI calls below
#   EMBBENCH_HF_TOKEN_PARAMETER           optional SSM SecureString holding HF_TOKEN
#   EMBBENCH_RESULTS_BUCKET, _PREFIX      optional S3 upload of the finished run
#
# Log: /var/log/embbench-setup.log. Done: /var/lib/embbench/ready (holds the finish time).
# Never `set -x` here: the HF token passes through this script.
set -euo pipefail
: "${EMBBENCH_REPO_URL:?}" "${EMBBENCH_GIT_REF:?}" "${EMBBENCH_MAX_HOURS:?}" "${EMBBENCH_AUTORUN:?}"
: "${EMBBENCH_REGION:?}" "${EMBBENCH_HF_TOKEN_PARAMETER=}" "${EMBBENCH_RESULTS_BUCKET=}" "${EMBBENCH_RESULTS_PREFIX=}"

exec > >(tee -a /var/log/embbench-setup.log) 2>&1
state=/var/lib/embbench
user=ubuntu
home=/home/$user
repo=$home/embbench
step() { printf '\n==> %s  %s\n' "$(date -u +%H:%M:%S)" "$*"; }
as_user() { sudo -u "$user" -H "$@"; }
mkdir -p "$state"

step "cost guard: halt ${EMBBENCH_MAX_HOURS} h after first boot (the halt terminates the instance)"
# The deadline is fixed once, at first boot; a unit re-arms `shutdown -h` on every boot, so a reboot
# does not lift the guard. `sudo shutdown -c` cancels it until the next boot.
[[ -f $state/deadline ]] || echo $(($(date +%s) + EMBBENCH_MAX_HOURS * 3600)) >"$state/deadline"
cat >/usr/local/sbin/embbench-deadline <<'GUARD'
#!/usr/bin/env bash
# Schedules the halt at the deadline in /var/lib/embbench/deadline (epoch seconds).
set -euo pipefail
left=$(( ($(cat /var/lib/embbench/deadline) - $(date +%s)) / 60 ))
(( left < 1 )) && left=1
shutdown -h "+$left" "embbench cost guard: this instance terminates in $left minutes"
GUARD
chmod 755 /usr/local/sbin/embbench-deadline
cat >/etc/systemd/system/embbench-deadline.service <<'UNIT'
[Unit]
Description=embbench cost guard: halt (and so terminate) the instance at its deadline
After=systemd-logind.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/embbench-deadline

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now embbench-deadline.service
echo "deadline: $(date -u -d "@$(cat "$state/deadline")")"

step "system packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# python3.11: the harness's Python environments need 3.11+ (22.04's python3 is 3.10).
pkgs=(git tmux curl rsync build-essential pkg-config cmake ca-certificates
  docker.io debootstrap util-linux npm python3-venv python3.11 python3.11-venv)
if [[ -n $EMBBENCH_HF_TOKEN_PARAMETER || -n $EMBBENCH_RESULTS_BUCKET ]]; then pkgs+=(awscli); fi
apt-get install -y -qq "${pkgs[@]}"
systemctl enable --now docker
usermod -aG docker "$user"

if [[ -n $EMBBENCH_HF_TOKEN_PARAMETER ]]; then
  step "HF_TOKEN from SSM parameter $EMBBENCH_HF_TOKEN_PARAMETER into /etc/embbench/hf_token.env (root only)"
  install -d -m 700 /etc/embbench
  umask 077
  if token="$(aws ssm get-parameter --region "$EMBBENCH_REGION" --name "$EMBBENCH_HF_TOKEN_PARAMETER" \
    --with-decryption --query Parameter.Value --output text 2>/dev/null)"; then
    printf 'HF_TOKEN=%s\n' "$token" >/etc/embbench/hf_token.env
    echo "written"
  else
    echo "WARNING: cannot read the parameter (missing, or the role lacks access); gated models will fail"
  fi
  unset token
  umask 022
fi

step "base image embbench/base:trixie from Docker Hub's debian:trixie"
# scripts/install.sh would make it with debootstrap from the host's Debian mirror; Ubuntu 22.04's
# debootstrap and keyring predate trixie, and this host reaches a registry, so take the official image
# with the same additions as docker/base/make_base.sh (CA certificates, the same environment).
if ! docker image inspect embbench/base:trixie >/dev/null 2>&1; then
  docker build -t embbench/base:trixie - <<'DOCKERFILE'
FROM debian:trixie
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt CARGO_HTTP_CAINFO=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["/bin/bash"]
DOCKERFILE
fi

step "Rust for $user (oha is built from crates.io)"
# Ubuntu 22.04's cargo is older than recent crates (oha among them) require, so rustup's stable
# toolchain comes first when its site answers; the distro's cargo is the fallback.
if as_user test -x "$home/.cargo/bin/cargo"; then
  echo "present: $(as_user "$home/.cargo/bin/cargo" --version)"
elif curl -fsS --max-time 20 https://sh.rustup.rs -o /tmp/rustup-init.sh; then
  # rustup adds ~/.cargo/bin to the login shell's PATH (~/.profile), where oha is installed.
  as_user sh /tmp/rustup-init.sh -y --profile minimal
else
  echo "rustup is unreachable: using Ubuntu's cargo (may be too old for oha)"
  apt-get install -y -qq cargo
fi

step "clone $EMBBENCH_REPO_URL at $EMBBENCH_GIT_REF"
if [[ ! -d $repo/.git ]]; then
  as_user git clone --quiet "$EMBBENCH_REPO_URL" "$repo"
fi
as_user git -C "$repo" fetch --quiet origin "$EMBBENCH_GIT_REF" || true
as_user git -C "$repo" checkout --quiet "$EMBBENCH_GIT_REF"
echo "at $(as_user git -C "$repo" rev-parse HEAD)"

step "scripts/install.sh"
as_user env PATH="$home/.cargo/bin:$PATH" PYTHON=python3.11 bash "$repo/scripts/install.sh"

step "single binary: deno task compile"
# This host can download Deno's runtime (denort). The launcher prefers embbench-bin, so keep the
# binary only if it finds the checkout's files; otherwise ./embbench runs main.ts with Deno.
if as_user bash -c "cd '$repo' && tools/deno/node_modules/.bin/deno task compile" \
  && as_user bash -c "cd '$repo' && ./embbench-bin validate >/dev/null"; then
  echo "embbench-bin built and checked"
else
  echo "WARNING: embbench-bin unusable; removed, ./embbench runs main.ts with Deno"
  rm -f "$repo/embbench-bin"
fi

date -u +%FT%TZ >"$state/ready"
step "ready: ssh $user@<host>, then: cd embbench && ./embbench doctor && ./embbench all"

if [[ $EMBBENCH_AUTORUN == true ]]; then
  step "autorun: ./embbench all in tmux session 'embbench' (tmux attach -t embbench)"
  cat >"$state/autorun.sh" <<'RUN'
#!/usr/bin/env bash
# Started by user_data.sh in tmux: the whole benchmark, then the optional upload of the run folder.
set -uo pipefail
export PATH="$HOME/.cargo/bin:$PATH"   # oha
cd "$HOME/embbench" || exit 1
./embbench all 2>&1 | tee -a "$HOME/embbench-all.log"
code=${PIPESTATUS[0]}
if [[ -n ${EMBBENCH_RESULTS_BUCKET:-} ]]; then
  run="$(cd results && find . -mindepth 2 -maxdepth 2 -name run.json -printf '%h\n' | sort | tail -n 1)"
  run=${run#./}
  if [[ -n $run ]]; then
    aws s3 cp --recursive --only-show-errors "results/$run" \
      "s3://$EMBBENCH_RESULTS_BUCKET/${EMBBENCH_RESULTS_PREFIX}$run/" && echo "uploaded results/$run"
  fi
fi
echo "embbench all exited $code"
exec bash
RUN
  chmod 755 "$state/autorun.sh"
  hf_token=""
  if [[ -f /etc/embbench/hf_token.env ]]; then
    hf_token="$(sed -n 's/^HF_TOKEN=//p' /etc/embbench/hf_token.env)"
  fi
  # Passed through the environment (never argv), so `ps` does not show it.
  HF_TOKEN="$hf_token" EMBBENCH_RESULTS_BUCKET="$EMBBENCH_RESULTS_BUCKET" \
    EMBBENCH_RESULTS_PREFIX="$EMBBENCH_RESULTS_PREFIX" \
    sudo -u "$user" -H --preserve-env=HF_TOKEN,EMBBENCH_RESULTS_BUCKET,EMBBENCH_RESULTS_PREFIX \
    tmux new-session -d -s embbench "$state/autorun.sh"
  unset hf_token
fi
step "setup finished"
