"""A lambda in parallel_map closes over the context and sends it whole."""

from rlm.subcalls import parallel_map, semantic_subcall

QUESTIONS = ["Who wrote it?", "When was it written?", "What is it about?"]


def answer_questions(context):
    """Answers to three fixed questions."""
    answers = parallel_map(lambda q: semantic_subcall(q, context), QUESTIONS)  # expect: rule1
    return {"answers": dict(zip(QUESTIONS, answers))}
