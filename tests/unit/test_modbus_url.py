"""hal.modbus.url.open_link: the bus URL schemes and the one-line refusals."""

import pytest

from hal.errors import BusConfigError
from hal.modbus.link import MemoryModbusLink
from hal.modbus.url import open_link


def test_memory_url_opens_an_in_process_link():
    link = open_link("memory://power", 0.05, {})
    assert isinstance(link, MemoryModbusLink)
    link.close()


@pytest.mark.parametrize("url, words", [
    ("tcp://localhost", "tcp://HOST:PORT"),
    ("rtu://?baudrate=9600", "rtu:///dev/ttyX"),
    ("rtu:///dev/ttyUSB0?baudrate=fast", "baudrate is not an integer"),
    ("udp://1.2.3.4:502", "scheme must be tcp, rtu or memory"),
])
def test_bad_urls_are_refused_in_one_line(url, words):
    with pytest.raises(BusConfigError, match=words) as info:
        open_link(url)
    assert "\n" not in str(info.value)
