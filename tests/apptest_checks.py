"""Checks on a run AppTest shared by the page tests (a helper module, not a test module)."""

from streamlit.testing.v1 import AppTest


def assert_clean(at: AppTest) -> None:
    """No exception reached the page."""
    assert not at.exception, [e.message for e in at.exception]


def errors(at: AppTest) -> list[str]:
    """The st.error messages on the page."""
    return [e.value for e in at.error]
