"""context_finditer streams every match; judging each one is unbounded model work."""

from rlm.context_access import context_finditer, context_line
from rlm.subcalls import semantic_subcall_bool

PATTERN = r"(?i)\bpayment (failed|declined)\b"


def payment_failures(context):
    """Payment failures caused by the customer."""
    customer = 0
    total = 0
    for m in context_finditer(context, PATTERN):  # expect: rule3
        total += 1
        if semantic_subcall_bool("Was this the customer's fault?", context_line(context, m.start)):
            customer += 1
    return {"total": total, "customer_caused": customer}
