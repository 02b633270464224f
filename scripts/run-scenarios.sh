#!/usr/bin/env bash
# Run Molecule scenarios in lanes: each argument is one lane, a space-separated
# list of scenarios run one after the other; the lanes run side by side.
#   scripts/run-scenarios.sh "default tls default@debian11" "app drill@debian11"
# scenario@image runs the scenario with REDISOPS_IMAGE=localhost/<image>-systemd:latest
# (its Redis hosts on that Debian release: debian11 = Redis 6.0, debian13 = 8.x).
# make:<target> runs that Makefile target in the lane (make test puts lint and
# the app tests in one), without remaking deps, venv, images or wheelhouse: the
# caller has (two apt runs at once would fight over its lock).
# Scenarios share nothing but the CPUs (own hosts, networks, ephemeral
# dirs), and most of a converge is waiting on podman exec, so two lanes on 2
# cores take about the time of the longer one. Each scenario's log is printed
# whole when it ends (never interleaved); all are kept in build/logs/.
# Exits non-zero if any scenario failed; the others still run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
logs=build/logs
mkdir -p "$logs"

# job LOG TITLE COMMAND...: run COMMAND into LOG, then print LOG whole (never
# interleaved with another job's) and how long it took.
job() {
    local log=$1 title=$2 t0=$SECONDS status
    shift 2
    "$@" >"$log" 2>&1
    status=$?
    {
        flock 9
        cat "$log"
        echo "== $title: exit $status after $((SECONDS - t0)) s"
    } 9>"$logs/.print.lock"
    return "$status"
}

lane() {
    local item scenario image rc=0
    for item in $1; do
        if [[ $item == make:* ]]; then
            job "$logs/make-${item#make:}.log" "make ${item#make:}" \
                make --no-print-directory -o deps -o venv -o images -o wheelhouse "${item#make:}" || rc=1
            continue
        fi
        scenario=${item%@*}
        image=${item#"$scenario"}
        image=${image#@}
        job "$logs/molecule-$scenario${image:+-$image}.log" \
            "molecule test -s $scenario${image:+ (REDISOPS_IMAGE $image)}" \
            env ${image:+REDISOPS_IMAGE=localhost/$image-systemd:latest} molecule test -s "$scenario" || rc=1
    done
    return "$rc"
}

# A scenario's hosts and network have fixed names: two runs of one scenario at
# once (default and default@debian13 in two lanes) would share, and break, them.
# Its runs on several images go in one lane, one after the other.
declare -A lane_of=()
for ((i = 1; i <= $#; i++)); do
    for item in ${!i}; do
        [[ $item == make:* ]] && continue
        scenario=${item%@*}
        if [[ -n ${lane_of[$scenario]:-} && ${lane_of[$scenario]} != "$i" ]]; then
            echo "run-scenarios: $scenario is in lanes ${lane_of[$scenario]} and $i: its runs would share hosts; put them in one lane" >&2
            exit 2
        fi
        lane_of[$scenario]=$i
    done
done

pids=()
for lane_scenarios in "$@"; do
    lane "$lane_scenarios" &
    pids+=("$!")
done
rc=0
for pid in "${pids[@]}"; do
    wait "$pid" || rc=1
done
exit "$rc"
