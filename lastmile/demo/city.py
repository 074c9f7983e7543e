"""Real street grids the demo's day is laid on: street intersections computed from one anchor
intersection, the grid's bearing and its spacing, with the streets' real names.

Barcelona's Eixample (Ildefons Cerdà's plan, 1859): blocks of 113.3 m with 20 m streets, so
street axes 133.3 m apart; streets parallel to the sea run at a bearing of about 44.5° (to the
north-east), the streets from the sea to the mountain at about 314.5°. Anchor: the crossing of
Passeig de Gràcia and Gran Via de les Corts Catalanes, 41.38985 N, 2.16775 E (OpenStreetMap,
to about 50 m). Passeig de Gràcia is wider than the other streets and the grid drifts a little
from the ideal; positions computed here are within about 150 m of the real crossings."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EARTH_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Place:
    lat: float
    lon: float
    address: str


@dataclass(frozen=True)
class Grid:
    name: str
    timezone: str
    phone_prefix: str  # customers' phone numbers: this + 8 digits
    anchor: tuple[float, float]  # (lat, lon) of row 0 × column 0
    along_bearing: float  # degrees: the direction columns are counted in (the "row" streets run so)
    across_bearing: float  # degrees: the direction rows are counted in
    spacing_m: float  # between street axes
    rows: tuple[str, ...]  # streets counted across from the anchor (row 0 first)
    columns: tuple[str, ...]  # streets counted along (column 0 first)
    column_zero: int  # the index in `columns` of the anchor's street
    depot: tuple[int, int]  # (row, column index) of the depot

    def point(self, row: float, column: float) -> tuple[float, float]:
        """(lat, lon) of a grid position (fractions are points between crossings)."""
        lat0, lon0 = self.anchor
        north = east = 0.0
        for steps, bearing in ((column - self.column_zero, self.along_bearing),
                               (row, self.across_bearing)):  # fmt: skip
            metres = steps * self.spacing_m
            north += metres * math.cos(math.radians(bearing))
            east += metres * math.sin(math.radians(bearing))
        lat = lat0 + north / EARTH_M_PER_DEG
        lon = lon0 + east / (EARTH_M_PER_DEG * math.cos(math.radians(lat0)))
        return round(lat, 6), round(lon, 6)

    def crossing(self, row: int, column: int) -> Place:
        lat, lon = self.point(row, column)
        return Place(lat, lon, f"{self.columns[column]} / {self.rows[row]}")

    def somewhere(self, rng: np.random.Generator) -> Place:
        """A door on a random block side: along a row street or a column street."""
        row = int(rng.integers(0, len(self.rows)))
        column = int(rng.integers(0, len(self.columns) - 1))
        share = float(rng.uniform(0.15, 0.85))
        number = int(rng.integers(1, 400))
        if rng.random() < 0.5:  # on the row street, between two column streets
            lat, lon = self.point(row, column + share)
            street = self.rows[row]
        else:
            row = min(row, len(self.rows) - 2)
            lat, lon = self.point(row + share, column)
            street = self.columns[column]
        return Place(lat, lon, f"{street} {number}, {self.name}")


BARCELONA = Grid(
    name="Barcelona",
    timezone="Europe/Madrid",
    phone_prefix="+34 6",
    anchor=(41.38985, 2.16775),
    along_bearing=44.5,
    across_bearing=314.5,
    spacing_m=133.3,
    rows=("Gran Via de les Corts Catalanes", "Carrer de la Diputació", "Carrer del Consell de Cent",
          "Carrer d'Aragó", "Carrer de València", "Carrer de Mallorca", "Carrer de Provença",
          "Carrer del Rosselló", "Carrer de Còrsega"),
    columns=("Carrer de Viladomat", "Carrer del Comte Borrell", "Carrer del Comte d'Urgell",
             "Carrer de Villarroel", "Carrer de Casanova", "Carrer de Muntaner", "Carrer d'Aribau",
             "Carrer d'Enric Granados", "Carrer de Balmes", "Rambla de Catalunya",
             "Passeig de Gràcia", "Carrer de Pau Claris", "Carrer de Roger de Llúria",
             "Carrer del Bruc", "Carrer de Girona", "Carrer de Bailèn"),
    column_zero=10,
    depot=(3, 2),  # Comte d'Urgell / Aragó
)  # fmt: skip

CITIES = {"barcelona": BARCELONA}
