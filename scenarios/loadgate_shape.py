"""The load shape ``loadgate run`` adds with ``-f locustfile.py,scenarios/loadgate_shape.py``.

Kept out of ``locustfile.py`` so plain ``locust -f locustfile.py -u N -r R``
keeps its usual meaning. Follows ``--loadgate-plan``: in the closed model
the persona users ramp and hold per stage; in the open model one arrival
driver per worker runs and the plan's rate does the rest. In both, one
``OperationsUser`` runs the operator's timed jobs (batches, payouts). Past the plan's
end the gate level is held while ``loadgate run`` says a criterion is undecided
(:mod:`scenarios.gate_hold`), up to the plan's ``gate_hold_max_s``.
"""

from __future__ import annotations

from locust import LoadTestShape

from scenarios.gate_hold import holding, read_control
from scenarios.inputs import plan_of
from scenarios.open_model import ArrivalUser
from scenarios.personas import PERSONA_USERS, OperationsUser
from scenarios.plan import LoadPlan

__all__ = ["ArrivalUser", "OperationsUser", "PlanShape"]


class PlanShape(LoadTestShape):
    _plan: LoadPlan | None = None

    def plan(self) -> LoadPlan:
        if self._plan is None:
            plan = plan_of(self.runner.environment) if self.runner else None
            if plan is None:
                raise RuntimeError("PlanShape needs --loadgate-plan (loadgate run writes it)")
            self._plan = plan
        return self._plan

    def held(self, plan: LoadPlan, t: float) -> bool:
        """Past the plan's end: whether loadgate still holds the gate step."""
        if plan.gate_hold_max_s <= 0:
            return False
        run_dir = getattr(self.runner.environment.parsed_options, "loadgate_run_dir", "")
        return holding(t, plan.duration_s, plan.gate_hold_max_s, read_control(run_dir))

    def tick(self):
        plan = self.plan()
        t = self.get_run_time()
        if plan.model == "open":
            if t >= plan.duration_s and not self.held(plan, t):
                return None
            options = self.runner.environment.parsed_options
            drivers = max(1, getattr(options, "loadgate_arrival_drivers", 1))
            # + the operator's timed jobs (OperationsUser.fixed_count = 1).
            return drivers + 1, drivers + 1, [ArrivalUser, OperationsUser]
        users = plan.users_at(t)
        if users is None:
            if not self.held(plan, t):
                return None
            users = plan.stages[-1].users  # the gate level, held past the plan
        stage = plan.stage_at(t)
        spawn_rate = 100.0
        if stage is not None and stage.kind == "ramp":
            before, _ = plan.level_before(stage)
            slope = abs(stage.users - before) / max(0.001, stage.end_s - stage.start_s)
            spawn_rate = max(1.0, slope * 1.5)
        classes = [cls for cls in PERSONA_USERS.values() if cls.weight > 0]
        return users, spawn_rate, [*classes, OperationsUser]
