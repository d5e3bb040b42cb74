"""devstack.processes: the process tree read from /proc."""

import os

from devstack.processes import process_tree


def test_tree_of_this_process_starts_with_it():
    assert process_tree(os.getpid())[0] == os.getpid()


def test_tree_of_a_gone_process_is_empty():
    assert process_tree(2**22 + 12345) == []
