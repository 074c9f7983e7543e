"""Load VRPLIB instances (Solomon, Gehring–Homberger) into our Problem, DIMACS convention:
arc length = Euclidean distance truncated to one decimal, travel time = that length, objective =
distance only. Everything is scaled by 10 to integers."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import vrplib

from core.routing.problem import Depot, Objective, Problem, Stop, Vehicle, Window

SCALE = 10


@dataclass(frozen=True)
class Instance:
    name: str
    problem: Problem
    bks: float | None  # best-known distance, unscaled
    bks_vehicles: int | None


def truncated_matrix(coords: np.ndarray) -> np.ndarray:
    diff = coords[:, None, :] - coords[None, :, :]
    exact = np.sqrt((diff**2).sum(axis=-1))
    return np.floor(exact * SCALE + 1e-9).astype(np.int64)


def load(path: Path, bks: dict[str, tuple[float, int]] | None = None) -> Instance:
    data = vrplib.read_instance(str(path))
    coords = np.asarray(data["node_coord"], dtype=float)
    matrix = truncated_matrix(coords)
    windows = np.asarray(data["time_window"], dtype=np.int64) * SCALE
    service = np.asarray(data["service_time"], dtype=np.int64) * SCALE
    if service.ndim == 0:
        service = np.full(len(coords), int(service))
    demand = np.asarray(data["demand"], dtype=np.int64)
    depot = Depot("depot", 0, Window(int(windows[0][0]), int(windows[0][1])))
    fleet = int(data.get("vehicles", len(coords) - 1))
    capacity = int(data["capacity"])
    vehicles = tuple(Vehicle(f"v{k}", depot="depot", capacity=(capacity,)) for k in range(fleet))
    stops = tuple(
        Stop(
            str(i),
            i,
            windows=(Window(int(windows[i][0]), int(windows[i][1])),),
            service=int(service[i]),
            demand=(int(demand[i]),),
        )
        for i in range(1, len(coords))
    )
    problem = Problem(
        durations=matrix,
        distances=matrix,
        vehicles=vehicles,
        stops=stops,
        depots=(depot,),
        dimensions=("load",),
        objective=Objective(distance=1, duration=0),
    )
    known = (bks or {}).get(path.stem)
    return Instance(path.stem, problem, known[0] if known else None, known[1] if known else None)


def read_bks(path: Path) -> dict[str, tuple[float, int]]:
    with path.open() as handle:
        return {
            row["instance"]: (float(row["distance"]), int(row["vehicles"]))
            for row in csv.DictReader(handle)
        }
