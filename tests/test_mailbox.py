"""One-slot mailbox: newest wins, overwrites are reported, close wakes the reader."""

import threading
import time

from fusion_ros.ros.mailbox import Mailbox


def test_newest_item_wins_and_overwrites_are_reported():
    box = Mailbox()
    assert box.put(1) is False
    assert box.put(2) is True
    assert box.get(timeout=0.1) == 2
    assert box.get(timeout=0.05) is None


def test_close_wakes_a_waiting_reader_and_reopen_accepts_again():
    box = Mailbox()
    got = []
    reader = threading.Thread(target=lambda: got.append(box.get(timeout=10)))
    reader.start()
    time.sleep(0.05)
    box.close()
    reader.join(timeout=2)
    assert not reader.is_alive() and got == [None] and box.closed
    box.reopen()
    box.put('x')
    assert box.get(timeout=0.1) == 'x'
