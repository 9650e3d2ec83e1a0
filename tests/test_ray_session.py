"""raylayers.ray_session: a Ray that does not start, or a RAY_ADDRESS that does not answer, is one line; a bug of
ours keeps its traceback. (ray.init is replaced by one that raises what Ray raises: starting a real cluster that
fails to start cannot be arranged in a test.)"""

import pytest
import ray

from raylayers.errors import UserError
from raylayers.ray_session import init_ray

STARTUP = ("The current node timed out during startup. This could happen because some of the raylet failed to "
           "startup or the GCS has become overloaded.")


@pytest.fixture
def ray_down(monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # init_ray sets it for the cluster it starts; restored afterwards, so these tests leave the environment as found
    monkeypatch.setenv("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")


def _raising(error):
    def init(**kwargs):
        raise error

    return init


def test_a_local_cluster_that_does_not_start_is_one_line_saying_where_the_logs_are(ray_down, monkeypatch):
    monkeypatch.setattr(ray, "init", _raising(Exception(STARTUP)))
    with pytest.raises(UserError) as caught:
        init_ray(num_cpus=1)
    message = str(caught.value)
    assert message.startswith("could not start a local Ray cluster: The current node timed out during startup.")
    assert "/tmp/ray/session_latest/logs" in message and "\n" not in message


def test_a_ray_address_that_does_not_answer_names_it(ray_down, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")
    monkeypatch.setattr(ray, "init", _raising(ConnectionError("Could not find any running Ray instance.")))
    with pytest.raises(UserError, match=r"^could not join the Ray cluster at RAY_ADDRESS=10\.0\.0\.9:6379: Could not"):
        init_ray()


def test_a_bug_keeps_its_traceback(ray_down, monkeypatch):
    monkeypatch.setattr(ray, "init", _raising(TypeError("init() got an unexpected keyword argument")))
    with pytest.raises(TypeError):
        init_ray()
