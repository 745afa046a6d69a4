"""Waits until a point on the monotonic clock with microsecond precision, without spinning.

uvloop keeps timers in whole milliseconds and rounds a shorter delay to zero: an
open-loop schedule at 5,000 requests/s that sleeps until the next due time (200 µs
away) turned into a busy loop that took a whole core, the core the gateway under test
needed on a 2-core machine. asyncio's own loop rounds up to 1 ms instead, which sends
requests up to a millisecond late. A Linux timerfd armed for the due time and watched
by the event loop wakes it within a few microseconds of that time, at no cost between.
Where there is no timerfd (not Linux), the pacer sleeps with the loop's timer, at least a
millisecond at a time (late by up to that much, but never spinning).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import time

__all__ = ["Pacer"]

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                                         ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return libc


class Pacer:
    """``await pacer.until(t_ns)`` returns at ``t_ns`` (``time.perf_counter_ns``, i.e.
    CLOCK_MONOTONIC on Linux) or just after. One waiter at a time."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._fd = -1
        self._waiter: asyncio.Future[None] | None = None
        self._spec = _Itimerspec()
        libc = _libc()
        # The timer runs on CLOCK_MONOTONIC: usable only if perf_counter_ns reads that clock.
        same_clock = time.get_clock_info("perf_counter").implementation == "clock_gettime(CLOCK_MONOTONIC)"
        if libc is not None and same_clock:
            fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                self._libc, self._fd = libc, fd
                self._loop.add_reader(fd, self._fired)

    @property
    def precise(self) -> bool:
        """True when waits end within microseconds of their time (a timerfd is in use)."""
        return self._fd >= 0

    async def until(self, t_ns: int) -> None:
        """Wait until ``t_ns``; return at once if it has passed."""
        if t_ns <= time.perf_counter_ns():
            return
        if self._fd < 0:
            # The loop's clock is read once per iteration, so its timer can end a little
            # early: sleep again until the time has really come.
            while (left := t_ns - time.perf_counter_ns()) > 0:
                await asyncio.sleep(max(0.001, left / 1e9))
            return
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(t_ns, 1_000_000_000)
        if self._libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self._waiter = self._loop.create_future()
        await self._waiter

    def _fired(self) -> None:
        try:
            os.read(self._fd, 8)  # the expiration count; reading it re-arms readiness
        except BlockingIOError:
            return
        w, self._waiter = self._waiter, None
        if w is not None and not w.done():
            w.set_result(None)

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
