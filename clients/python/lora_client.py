#!/usr/bin/python3
"""lora_client.py: a Python client of the lora-sweep coordinator (lorad).

It submits a sweep, watches it and reads its results through the public
lora.v1 gRPC API (proto/lora/v1/), the way any other tooling would: Debian's
python3-grpcio and python3-protobuf, plus stubs generated from the protos by
grpc_python_plugin. It is also the API example of the README.

Usage:

    # 1. Generate the stubs once (protoc + grpc_python_plugin, from Debian's
    #    protobuf-compiler and protobuf-compiler-grpc).
    clients/python/generate_stubs.sh /tmp/lora-stubs
    export LORA_STUBS=/tmp/lora-stubs          # or pass --stubs DIR

    # 2. Point the client at lorad (default 127.0.0.1:7070) with a client
    #    token if lorad was started with --tokens_file.
    export LORACTL_SERVER=127.0.0.1:7070       # or --server HOST:PORT
    export LORACTL_TOKEN=3b6f0c1e9a0d4c8f...   # or --token TOKEN

    # 3. Submit, watch, read results (with Debian's /usr/bin/python3, the
    #    script's #! line, which has python3-grpcio).
    clients/python/lora_client.py submit sweep.yaml [--wait]
    clients/python/lora_client.py watch SWEEP_ID [--no-metrics]
    clients/python/lora_client.py results SWEEP_ID [--group-by KEY]

Subcommands:

  submit SWEEP.yaml   SubmitSweep with the file's text; prints the sweep id
                      and its runs. Submitting the same sweep again is safe:
                      it prints that the sweep already existed. --dry-run
                      validates and expands only; --retry-failed requeues
                      the FAILED and CANCELLED runs of an existing sweep;
                      --wait watches the sweep until it ends.
  watch SWEEP_ID      Streams WatchSweep: run state changes, metric points
                      (unless --no-metrics; --metric NAME keeps only some)
                      and the sweep's state changes, each with its sequence
                      number. When the stream breaks (lorad restarting:
                      UNAVAILABLE or CANCELLED; a watcher that fell behind:
                      RESOURCE_EXHAUSTED) it reconnects with backoff from the
                      last sequence it printed, so nothing is missed or
                      printed twice. Ends when the sweep is terminal.
                      --after N starts after sequence N.
  results SWEEP_ID    GetResults: the ablation table, one row per value of
                      the grouping parameter (default lora.rank): succeeded
                      runs aggregated, mean ± sample std of the sweep metric
                      (each run's best value), trainable parameters and their
                      share of the model. --runs adds one line per run.

Exit status: 0 on success (watch and submit --wait: the sweep SUCCEEDED);
2 for a bad request (INVALID_ARGUMENT, e.g. "sweep.yaml:7: lora.rank:
expected an integer >= 1, got 0"; an unreadable file; bad usage); 1 for
every other error, and for a sweep that ended FAILED or CANCELLED.

Finding the stubs: --stubs DIR, else $LORA_STUBS, else whatever `import
lora.v1` finds on PYTHONPATH. DIR is the OUT folder of generate_stubs.sh (it
holds lora/v1/*_pb2.py and *_pb2_grpc.py).
"""

import argparse
import datetime
import os
import random
import sys
import time

SERVER_DEFAULT = "127.0.0.1:7070"
# Unary calls fail after this long instead of hanging on a stuck server.
CALL_TIMEOUT_S = 30
# Watch: reconnect attempts without progress before giving up, and the
# backoff between them (doubling from BACKOFF_FIRST_S up to BACKOFF_MAX_S).
WATCH_RETRIES = 8
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0

EXIT_OK, EXIT_ERROR, EXIT_BAD_REQUEST = 0, 1, 2


class ClientError(Exception):
    """An error to print as is, with the exit status to end with."""

    def __init__(self, message, exit_code=EXIT_ERROR):
        super().__init__(message)
        self.exit_code = exit_code


def load_stubs(stubs_dir):
    """Imports grpc and the generated lora.v1 modules (from stubs_dir)."""
    if stubs_dir:
        if not os.path.isdir(os.path.join(stubs_dir, "lora", "v1")):
            raise ClientError(
                f"no lora/v1 stubs under {stubs_dir}; generate them with "
                f"clients/python/generate_stubs.sh {stubs_dir}", EXIT_BAD_REQUEST)
        sys.path.insert(0, os.path.abspath(stubs_dir))
    global grpc, common_pb2, sweep_service_pb2, sweep_service_pb2_grpc
    try:
        import grpc
    except ImportError as error:
        raise ClientError(
            f"{error}: install Debian's python3-grpcio and python3-protobuf, "
            f"and run this script with /usr/bin/python3 (this is {sys.executable})")
    try:
        from lora.v1 import common_pb2, sweep_service_pb2, sweep_service_pb2_grpc
    except ImportError as error:
        raise ClientError(
            f"cannot import the lora.v1 stubs ({error}); generate them with "
            "clients/python/generate_stubs.sh OUT and pass --stubs OUT or set "
            "LORA_STUBS=OUT", EXIT_BAD_REQUEST)


# ----------------------------------------------------------------------------
# Formatting helpers

def enum_name(enum_type, number, prefix):
    """RUN_STATE_RUNNING -> RUNNING."""
    return enum_type.Name(number).replace(prefix, "", 1)


def run_state(number):
    return enum_name(common_pb2.RunState, number, "RUN_STATE_")


def sweep_state(number):
    return enum_name(common_pb2.SweepState, number, "SWEEP_STATE_")


def format_value(value):
    """A google.protobuf.Value as the sweep file would write it."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        return str(int(number)) if number.is_integer() else f"{number:g}"
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "list_value":
        return "[" + ", ".join(format_value(v) for v in value.list_value.values) + "]"
    if kind == "struct_value":
        fields = value.struct_value.fields
        return "{" + ", ".join(f"{k}: {format_value(fields[k])}" for k in sorted(fields)) + "}"
    return "null"


def format_parameters(parameters):
    """{"lora.rank": 2, "seed": 0} -> "lora.rank=2 seed=0" (sorted keys)."""
    return " ".join(f"{key}={format_value(parameters[key])}" for key in sorted(parameters))


def format_time(timestamp):
    if timestamp.seconds == 0 and timestamp.nanos == 0:
        return "--:--:--"
    return datetime.datetime.fromtimestamp(timestamp.seconds).strftime("%H:%M:%S")


def print_table(header, rows, align):
    """Prints columns aligned as `align` says, one letter per column: l or r."""
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        cells = [str(cell).ljust(width) if how == "l" else str(cell).rjust(width)
                 for cell, width, how in zip(row, widths, align)]
        print("  ".join(cells).rstrip())


# ----------------------------------------------------------------------------
# The calls

class Client:
    """SweepService calls with the bearer token attached."""

    def __init__(self, server, token):
        self.server = server
        # GetResults of a large sweep can exceed gRPC's 4 MiB default.
        self.channel = grpc.insecure_channel(
            server, options=[("grpc.max_receive_message_length", 64 << 20)])
        self.stub = sweep_service_pb2_grpc.SweepServiceStub(self.channel)
        self.metadata = [("authorization", f"Bearer {token}")] if token else []

    def call(self, method, request):
        """One unary call; gRPC errors become ClientErrors."""
        try:
            return getattr(self.stub, method)(
                request, metadata=self.metadata, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as error:
            raise self.explain(method, error)

    def explain(self, method, error):
        """A ClientError saying what went wrong and what to do about it."""
        code = error.code()
        details = error.details() or ""
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            # lorad's message names the file, line, key and value already.
            return ClientError(f"invalid request: {details}", EXIT_BAD_REQUEST)
        hints = {
            grpc.StatusCode.UNAUTHENTICATED:
                "pass a client token with --token or $LORACTL_TOKEN",
            grpc.StatusCode.PERMISSION_DENIED:
                "the token's role may not call SweepService (use a client or admin token)",
            grpc.StatusCode.UNAVAILABLE:
                f"is lorad running and listening on {self.server}?",
            grpc.StatusCode.DEADLINE_EXCEEDED:
                f"lorad did not answer within {CALL_TIMEOUT_S} s",
        }
        message = f"{method}: {code.name}: {details}"
        if code in hints:
            message += f" ({hints[code]})"
        return ClientError(message, EXIT_ERROR)

    def run_labels(self, sweep_id):
        """run_id -> "#index lora.rank=.. seed=..", for readable events."""
        labels, token = {}, ""
        while True:
            page = self.call("ListRuns", sweep_service_pb2.ListRunsRequest(
                sweep_id=sweep_id, page_size=1000, page_token=token))
            for run in page.runs:
                labels[run.run_id] = f"#{run.index} {format_parameters(run.parameters)}"
            token = page.next_page_token
            if not token:
                return labels


# ----------------------------------------------------------------------------
# Subcommands

def submit(client, args):
    try:
        with open(args.sweep_file, encoding="utf-8") as f:
            spec_yaml = f.read()
    except OSError as error:
        raise ClientError(f"cannot read {args.sweep_file}: {error.strerror}",
                          EXIT_BAD_REQUEST)
    response = client.call("SubmitSweep", sweep_service_pb2.SubmitSweepRequest(
        spec_yaml=spec_yaml,
        # lorad names this file in its errors: "sweep.yaml:7: lora.rank: ...".
        source_name=args.sweep_file,
        dry_run=args.dry_run,
        retry_failed=args.retry_failed))
    sweep = response.sweep
    if args.dry_run:
        what = "valid (dry run, nothing stored)"
    elif response.already_existed:
        what = "already existed (nothing new to train)"
        if response.requeued_runs:
            what = f"already existed; {response.requeued_runs} failed or cancelled runs requeued"
    else:
        what = "submitted"
    print(f"sweep {sweep.sweep_id} {what}")
    print(f"  name: {sweep.name}, {len(response.runs)} runs, state "
          f"{sweep_state(sweep.state)}, metric {sweep.metric.name} "
          f"({enum_name(common_pb2.MetricGoal, sweep.metric.goal, 'METRIC_GOAL_').lower()})")
    rows = []
    for run in response.runs:
        counts = run.parameter_counts
        percent = 100.0 * counts.trainable / counts.total if counts.total else 0.0
        rows.append([f"#{run.index}", format_parameters(run.parameters), run_state(run.state),
                     f"{counts.trainable:,}", f"{percent:.3f}%", run.run_id])
    print_table(["run", "parameters", "state", "trainable", "%", "run id"], rows, "lllrrl")
    if args.wait and not args.dry_run:
        print()
        return watch_sweep(client, sweep.sweep_id, after=0, metrics=True, metric_names=[])
    return EXIT_OK


def watch(client, args):
    return watch_sweep(client, args.sweep_id, args.after, not args.no_metrics, args.metric)


def watch_sweep(client, sweep_id, after, metrics, metric_names):
    """Prints the sweep's events until it is terminal, resuming on breaks."""
    sweep = client.call("GetSweep", sweep_service_pb2.GetSweepRequest(sweep_id=sweep_id))
    print(f"watching sweep {sweep.sweep_id} ({sweep.name}): {sweep_state(sweep.state)}, "
          f"{sweep.total_runs} runs", flush=True)
    labels = client.run_labels(sweep_id)
    last = after
    final = None
    failures = 0  # reconnects since the last event
    while True:
        request = sweep_service_pb2.WatchSweepRequest(
            sweep_id=sweep_id, after_sequence=last, include_metrics=metrics)
        try:
            # No deadline: a sweep may run for days.
            for event in client.stub.WatchSweep(request, metadata=client.metadata):
                last = event.sequence
                failures = 0
                final = print_event(event, labels, metric_names) or final
            break  # lorad ends the stream once the sweep is terminal
        except grpc.RpcError as error:
            # UNAVAILABLE: lorad stopping or not reachable; RESOURCE_EXHAUSTED:
            # too many watchers, or this one fell behind; CANCELLED: a
            # stopping lorad cancels the calls in flight (this client never
            # cancels its own).
            retryable = error.code() in (grpc.StatusCode.UNAVAILABLE,
                                         grpc.StatusCode.RESOURCE_EXHAUSTED,
                                         grpc.StatusCode.CANCELLED)
            if not retryable or failures >= WATCH_RETRIES:
                raise client.explain("WatchSweep", error)
            # Exponential backoff with jitter, so watchers of a restarted
            # lorad do not all come back in the same instant.
            delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** failures)
            delay *= random.uniform(0.8, 1.2)
            failures += 1
            print(f"watch interrupted ({error.code().name}: {error.details()}); "
                  f"resuming after sequence {last} in {delay:.1f} s",
                  file=sys.stderr, flush=True)
            time.sleep(delay)
    if final is None:  # resumed after the terminal event: ask for the state
        final = client.call("GetSweep", sweep_service_pb2.GetSweepRequest(
            sweep_id=sweep_id)).state
    print(f"sweep {sweep_id} ended {sweep_state(final)}", flush=True)
    return EXIT_OK if final == common_pb2.SWEEP_STATE_SUCCEEDED else EXIT_ERROR


def print_event(event, labels, metric_names):
    """Prints one SweepEvent; returns the sweep's new state if it is terminal."""
    head = f"[{event.sequence}] {format_time(event.time)}"
    kind = event.WhichOneof("event")
    if kind == "run_state":
        change = event.run_state
        line = (f"{head} run {labels.get(change.run_id, change.run_id)}: "
                f"{run_state(change.state)} (attempt {change.attempt}")
        if change.worker_id:
            line += f", worker {change.worker_id}"
        line += ")"
        if change.error:
            line += f": {change.error}"
        print(line, flush=True)
    elif kind == "metric":
        point = event.metric.point
        if metric_names and point.name not in metric_names:
            return None
        print(f"{head} run {labels.get(event.metric.run_id, event.metric.run_id)}: "
              f"{point.name} = {point.value:.6g} (step {point.step}, epoch {point.epoch})",
              flush=True)
    elif kind == "sweep_state":
        state = event.sweep_state.state
        print(f"{head} sweep {sweep_state(state)}", flush=True)
        if state in (common_pb2.SWEEP_STATE_SUCCEEDED, common_pb2.SWEEP_STATE_FAILED,
                     common_pb2.SWEEP_STATE_CANCELLED):
            return state
    return None


def results(client, args):
    response = client.call("GetResults", sweep_service_pb2.GetResultsRequest(
        sweep_id=args.sweep_id, group_by=args.group_by))
    sweep, metric = response.sweep, response.metric
    goal = enum_name(common_pb2.MetricGoal, metric.goal, "METRIC_GOAL_").lower()
    print(f"sweep {sweep.sweep_id} ({sweep.name}): {sweep_state(sweep.state)}, "
          f"{sweep.total_runs} runs")
    print(f"metric: best {metric.name} per run ({goal}), succeeded runs grouped by "
          f"{response.group_by}")
    print()
    rows = []
    for group in response.groups:
        if group.runs > 0:
            score = f"{group.metric_mean:.4f} ± {group.metric_std:.4f}"
        else:
            score = "-"  # no run of the group has succeeded yet
        rows.append([format_value(group.value), group.runs, score,
                     f"{group.trainable_parameters:,}", f"{group.trainable_percent:.3f}%"])
    print_table([response.group_by, "runs", f"{metric.name} mean ± std",
                 "trainable params", "trainable %"], rows, "lrrrr")
    if args.runs:
        print()
        rows = [[run.run_id, format_parameters(run.parameters), run_state(run.state),
                 f"{run.best_metric:.4f}" if run.state == common_pb2.RUN_STATE_SUCCEEDED else "-",
                 run.best_epoch or "-"]
                for run in response.runs]
        print_table(["run id", "parameters", "state", f"best {metric.name}", "epoch"], rows,
                    "lllrr")
    return EXIT_OK


# ----------------------------------------------------------------------------

def parse_args(argv):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", default=os.environ.get("LORACTL_SERVER", SERVER_DEFAULT),
                        help="lorad's gRPC address, HOST:PORT (default $LORACTL_SERVER "
                             f"or {SERVER_DEFAULT})")
    common.add_argument("--token", default=os.environ.get("LORACTL_TOKEN", ""),
                        help="client bearer token (default $LORACTL_TOKEN)")
    common.add_argument("--stubs", default=os.environ.get("LORA_STUBS", ""),
                        help="folder of the generated lora/v1 stubs (default $LORA_STUBS)")

    parser = argparse.ArgumentParser(
        description="Submit, watch and read the results of lora-sweep sweeps.",
        epilog="Run 'lora_client.py COMMAND --help' for a command's options.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("submit", parents=[common], help="submit a sweep file")
    p.add_argument("sweep_file", metavar="SWEEP.yaml")
    p.add_argument("--dry-run", action="store_true", help="validate and expand only")
    p.add_argument("--retry-failed", action="store_true",
                   help="requeue the failed and cancelled runs of an existing sweep")
    p.add_argument("--wait", action="store_true", help="watch the sweep until it ends")
    p.set_defaults(handler=submit)

    p = commands.add_parser("watch", parents=[common], help="follow a sweep's events")
    p.add_argument("sweep_id", metavar="SWEEP_ID")
    p.add_argument("--after", type=int, default=0, metavar="SEQ",
                   help="start after this event sequence (default: from the start)")
    p.add_argument("--no-metrics", action="store_true", help="state changes only")
    p.add_argument("--metric", action="append", default=[], metavar="NAME",
                   help="print only these metrics (repeatable), e.g. val_accuracy")
    p.set_defaults(handler=watch)

    p = commands.add_parser("results", parents=[common], help="print the ablation table")
    p.add_argument("sweep_id", metavar="SWEEP_ID")
    p.add_argument("--group-by", default="lora.rank", metavar="KEY",
                   help="swept parameter to group by (default lora.rank)")
    p.add_argument("--runs", action="store_true", help="also list every run")
    p.set_defaults(handler=results)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        load_stubs(args.stubs)
        client = Client(args.server, args.token)
        return args.handler(client, args)
    except ClientError as error:
        print(f"lora_client: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
