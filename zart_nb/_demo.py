"""The seed example ("Parallel Steps", Zart documentation) in Python: run by ``zart demo``."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import zart_nb as zart


@dataclass
class HealthCheckInput:
    services: list[str]


@dataclass
class ServiceResult:
    name: str
    status: str
    response_ms: int
    issues: list[str] = field(default_factory=list)


@dataclass
class HealthCheckOutput:
    services_checked: int
    total_issues: int
    results: list[ServiceResult]


@zart.step("check-service")
def check_service(service: str) -> ServiceResult:
    checks = {
        "auth-api": ("healthy", 42, []),
        "payments": ("degraded", 156, ["high latency detected"]),
        "users-db": ("healthy", 28, []),
    }
    status, response_ms, issues = checks.get(service, ("unknown", 0, ["no check configured"]))
    return ServiceResult(service, status, response_ms, list(issues))


class HealthCheckTask(zart.DurableExecution):
    def run(self, data: HealthCheckInput) -> HealthCheckOutput:
        # Schedule one step per service: all are registered before any result is awaited.
        handles = [zart.schedule(check_service, service) for service in data.services]
        # Block until every scheduled step has a persisted result (in the handles' order).
        results = zart.wait(handles, return_exceptions=True)
        service_results = []
        for result in results:
            if isinstance(result, zart.StepError):
                raise zart.TaskError(zart.context().execution_id,
                                     f"parallel-health-check: {result}") from result
            service_results.append(result)
        total_issues = sum(len(s.issues) for s in service_results)
        return HealthCheckOutput(len(service_results), total_issues, service_results)


SERVICES = ["auth-api", "payments", "users-db"]


def main(journal: str | None = None, execution_id: str | None = None, workers: int | None = None) -> None:
    registry = zart.TaskRegistry()
    registry.register("health-check", HealthCheckTask())
    durable = zart.DurableScheduler(registry, journal=journal, workers=workers)
    execution_id = execution_id or f"parallel-demo-{int(time.time())}"
    print("=== Zart Parallel Steps Example ===")
    print()
    print(f"Starting execution '{execution_id}'...")
    print(f"  Services: {json.dumps(SERVICES, separators=(', ', ': '))}")
    print()
    print("Worker started. Steps executing...")
    print()
    output = durable.start_and_wait_for(execution_id, "health-check", HealthCheckInput(SERVICES),
                                        timeout=60)
    print("Execution completed!")
    print(f"  Services checked: {output.services_checked}")
    print(f"  Total issues:     {output.total_issues}")
    print()
    for service in output.results:
        print(f"  Service: {service.name} — status: {service.status} ({service.response_ms}ms)")
        for issue in service.issues:
            print(f"    Issue: {issue}")
