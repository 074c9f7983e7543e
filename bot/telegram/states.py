"""Multi-step conversations (FSM states)."""

from aiogram.fsm.state import State, StatesGroup


class NewOrder(StatesGroup):
    name = State()
    phone = State()
    address = State()
    choose = State()
    window = State()
    size = State()
    notes = State()
    confirm = State()


class Proof(StatesGroup):
    photo = State()
    name = State()
    pin = State()


class FailOther(StatesGroup):
    text = State()


class Instructions(StatesGroup):
    text = State()


class Import(StatesGroup):
    file = State()
