#!/usr/bin/env bash
# Runs shellcheck on every shell script of the repository (make lint): files named
# *.sh and files whose shebang names sh, bash, dash or ksh, outside .git, .venv*,
# build/ and caches. Prints the files it checked.
#
# Left out: Jinja templates (*.j2, e.g. roles/*/templates/usr/local/sbin/*.j2).
# They become shell scripts only once Ansible renders them; `{{ }}` and `{% %}`
# are not shell, so shellcheck cannot parse them as they are.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v shellcheck >/dev/null || {
  echo "lint-shell: shellcheck not found (run: make deps)" >&2
  exit 1
}

# Findings waived in files another owner must fix, by file: the shellcheck codes
# skipped there, and why. Each is printed on every run; remove it once fixed.
declare -A WAIVERS=()

is_shell() {
  case $1 in
    *.j2) return 1 ;;
    *.sh) return 0 ;;
  esac
  local first
  IFS= read -r first <"$1" 2>/dev/null || return 1
  [[ $first =~ ^#![[:space:]]*/(usr/)?(local/)?bin/(env[[:space:]]+)?(sh|bash|dash|ksh)([[:space:]]|$) ]]
}

files=()
while IFS= read -r -d '' f; do
  f=${f#./}
  if is_shell "$f"; then files+=("$f"); fi
done < <(find . \( -name .git -o -name '.venv*' -o -name build -o -name node_modules -o -name '*cache*' \
  -o -name '*.egg-info' \) -prune -o -type f -print0 | sort -z)

[ ${#files[@]} -gt 0 ] || { echo "lint-shell: no shell scripts found" >&2; exit 1; }

rc=0
plain=()
for f in "${files[@]}"; do
  if [ -n "${WAIVERS[$f]:-}" ]; then
    echo "shellcheck: $f: waived ${WAIVERS[$f]} (see scripts/lint-shell.sh)"
    shellcheck --exclude="${WAIVERS[$f]}" "$f" || rc=1
  else
    plain+=("$f")
  fi
done
shellcheck "${plain[@]}" || rc=1
echo "shellcheck: ${#files[@]} scripts checked: ${files[*]}"
exit "$rc"
