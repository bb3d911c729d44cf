import dataclasses

from noded.daemon.failures import CLD_DUMPED, CLD_EXITED, CLD_KILLED, ExitFacts, describe_exit


def test_exit_code():
    r = describe_exit(ExitFacts(result="exit-code", exec_main_code=CLD_EXITED, exec_main_status=3))
    assert r.exit_status == 3 and r.signal is None
    assert "exited with status 3" in r.reason and "Result=exit-code" in r.reason


def test_exit_zero_is_called_out():
    r = describe_exit(ExitFacts(result="success", exec_main_code=CLD_EXITED, exec_main_status=0))
    assert "status 0" in r.reason and "should have kept running" in r.reason


def test_signals():
    r = describe_exit(ExitFacts(result="signal", exec_main_code=CLD_KILLED, exec_main_status=9))
    assert r.signal == "SIGKILL" and "killed by SIGKILL" in r.reason
    r = describe_exit(ExitFacts(result="core-dump", exec_main_code=CLD_DUMPED, exec_main_status=11))
    assert r.signal == "SIGSEGV" and "core dumped" in r.reason


def test_oom_names_memory_and_limit():
    r = describe_exit(
        ExitFacts(result="oom-kill", exec_main_code=CLD_KILLED, exec_main_status=9, memory_max=64 * 2**20)
    )
    assert "out of memory" in r.reason and "64 MiB" in r.reason and "OOM" in r.reason
    r = describe_exit(ExitFacts(result="signal", exec_main_code=CLD_KILLED, exec_main_status=9, oom_killed=True))
    assert "out of memory" in r.reason and "no memory_max" in r.reason and "machine" in r.reason


def test_a_node_the_watchdog_ended_hung_in_process_or_setup():
    facts = ExitFacts(result="watchdog", exec_main_code=CLD_KILLED, exec_main_status=6, watchdog=30.0)
    r = describe_exit(facts)
    assert r.reason.startswith("hung in process() for 30 s: systemd's watchdog ended it (")
    assert r.signal == "SIGABRT" and "killed by SIGABRT" in r.reason and "[Result=watchdog]" in r.reason
    r = describe_exit(dataclasses.replace(facts, hung_in="setup()", watchdog=2.5, exec_main_code=CLD_DUMPED))
    assert r.reason.startswith("hung in setup() for 2.5 s") and "core dumped" in r.reason


def test_setup_exception_text_is_included():
    r = describe_exit(
        ExitFacts(
            result="exit-code",
            exec_main_code=CLD_EXITED,
            exec_main_status=1,
            status_text="error: RuntimeError: model file missing",
        )
    )
    assert "RuntimeError: model file missing" in r.reason


def test_systemd_start_up_failures_are_named():
    r = describe_exit(ExitFacts(result="exit-code", exec_main_code=CLD_EXITED, exec_main_status=203))
    assert r.exit_status == 203
    assert "203/EXEC" in r.reason and "executable is missing" in r.reason and "systemd" in r.reason
    # The same status from the node's own code (Result=success is impossible, but a plain
    # exit-code with a status systemd does not use) stays a plain exit.
    r = describe_exit(ExitFacts(result="exit-code", exec_main_code=CLD_EXITED, exec_main_status=201))
    assert r.reason.startswith("exited with status 201")


def test_tasks_max_is_named_when_threads_cannot_start():
    facts = dict(
        result="exit-code",
        exec_main_code=CLD_EXITED,
        exec_main_status=1,
        status_text="error: RuntimeError: can't start new thread",
    )
    r = describe_exit(ExitFacts(**facts, tasks_max=4))
    assert "can't start new thread" in r.reason and "tasks_max of 4" in r.reason
    r = describe_exit(ExitFacts(**facts))  # no limit set: no such claim
    assert "tasks_max" not in r.reason


def test_an_exit_caused_by_a_dead_peer_is_a_consequence() -> None:
    from noded.daemon.failures import is_consequence
    from noded.dataplane.channels import ConsumerGone
    from noded.errors import ExitCode

    assert ConsumerGone("x").exit_code is ExitCode.PEER_GONE
    peer_gone = ExitFacts(
        result="exit-code",
        exec_main_code=CLD_EXITED,
        exec_main_status=int(ExitCode.PEER_GONE),
        status_text="",
        memory_max=None,
        oom_killed=False,
    )
    assert is_consequence(peer_gone)
    assert not is_consequence(dataclasses.replace(peer_gone, exec_main_status=1))
    assert not is_consequence(dataclasses.replace(peer_gone, exec_main_code=CLD_KILLED, exec_main_status=5))


def test_a_sigbus_names_a_full_dev_shm():
    facts = ExitFacts(result="signal", exec_main_code=CLD_KILLED, exec_main_status=7, shm=(4096, 8 * 2**20, 2**20))
    r = describe_exit(facts)
    assert r.signal == "SIGBUS"
    assert "killed by SIGBUS: /dev/shm is full (0.0 of 8.0 MiB free; its messages take up to 1.0 MiB)" in r.reason
    assert "could not be backed" in r.reason
    roomy = describe_exit(dataclasses.replace(facts, shm=(6 * 2**20, 8 * 2**20, 2**20)))
    assert "/dev/shm was short (6.0 of 8.0 MiB free" in roomy.reason
    assert "/dev/shm" not in describe_exit(dataclasses.replace(facts, shm=None)).reason
