"""Operating a deployed stack as a person does: status, model list, rollback, reports, approvals.

Every command here is a client of the stack (public AWS APIs through `StackClient`), local emulator or AWS alike.
"""
