#!/usr/bin/python3
"""Plays a lora-worker for python_client_test.sh, through WorkerService.

Registers, then for each of --runs jobs: AcquireJob, one ReportProgress
batch (val_accuracy at epochs 1 and 2, train_loss), FinishRun SUCCEEDED.
No training happens. A run's best val_accuracy is a function of its swept
parameters, so the test knows the table to expect:

    0.70 + 0.10 * (lora.rank - 1) + 0.04 * seed

    fake_worker.py --stubs DIR --server HOST:PORT --token TOKEN --runs N
"""

import argparse
import sys

import grpc
from google.protobuf import duration_pb2, timestamp_pb2


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stubs", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--runs", type=int, required=True)
    args = parser.parse_args()
    sys.path.insert(0, args.stubs)
    from lora.v1 import common_pb2, worker_service_pb2, worker_service_pb2_grpc

    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
    stub = worker_service_pb2_grpc.WorkerServiceStub(grpc.insecure_channel(args.server))
    registered = stub.RegisterWorker(
        worker_service_pb2.RegisterWorkerRequest(
            name="python-fake-worker",
            capabilities=common_pb2.WorkerCapabilities(
                device=common_pb2.DEVICE_KIND_CPU, cpu_threads=1,
                max_concurrent_jobs=1, worker_version="fake")),
        metadata=metadata, timeout=30)
    worker_id = registered.worker_id

    for _ in range(args.runs):
        acquired = stub.AcquireJob(
            worker_service_pb2.AcquireJobRequest(
                worker_id=worker_id, wait=duration_pb2.Duration(seconds=10)),
            metadata=metadata, timeout=30)
        if not acquired.HasField("job"):
            print("fake_worker: AcquireJob returned no job", file=sys.stderr)
            return 1
        job = acquired.job
        params = job.run.parameters
        best = 0.70 + 0.10 * (params["lora.rank"].number_value - 1) \
            + 0.04 * params["seed"].number_value
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        points = [
            common_pb2.MetricPoint(name="train_loss", step=10, epoch=1, value=0.69, time=now),
            common_pb2.MetricPoint(name="val_accuracy", step=10, epoch=1, value=best - 0.1,
                                   time=now),
            common_pb2.MetricPoint(name="train_loss", step=20, epoch=2, value=0.5, time=now),
            common_pb2.MetricPoint(name="val_accuracy", step=20, epoch=2, value=best, time=now),
        ]
        batch = worker_service_pb2.ProgressBatch(
            run_id=job.run.run_id, attempt=job.attempt, lease_id=job.lease_id,
            sequence=1, points=points)
        acks = list(stub.ReportProgress(iter([batch]), metadata=metadata, timeout=30))
        if not acks or acks[-1].acked_sequence != 1 or acks[-1].stop:
            print(f"fake_worker: unexpected acks {acks}", file=sys.stderr)
            return 1
        finished = stub.FinishRun(
            worker_service_pb2.FinishRunRequest(
                run_id=job.run.run_id, attempt=job.attempt, lease_id=job.lease_id,
                outcome=worker_service_pb2.RUN_OUTCOME_SUCCEEDED,
                final_metrics={"val_accuracy": best, "train_loss": 0.5},
                best_metric=best, best_epoch=2),
            metadata=metadata, timeout=30)
        if finished.state != common_pb2.RUN_STATE_SUCCEEDED:
            print(f"fake_worker: run ended {finished.state}", file=sys.stderr)
            return 1
        print(f"fake_worker: {job.run.run_id} SUCCEEDED with val_accuracy {best:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
