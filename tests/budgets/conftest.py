import pytest


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a function and then the on-commit callbacks it registered, as a real commit would."""

    def run(function, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(*args, **kwargs)

    return run
