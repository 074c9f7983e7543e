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


class Import(StatesGroup):
    file = State()
