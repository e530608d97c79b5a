# Freeze the certpin device library into custom MicroPython firmware:
#   include("/path/to/certpin/firmware_lib/manifest.py")   from your board's manifest
# (boards/ESP32_GENERIC/manifest.py and boards/RPI_PICO_W/manifest.py do that).
# Frozen bytecode runs from flash: `import certpin` then costs almost no RAM.
#
# The version is __version__ in certpin/__init__.py; tests/test_boards_packaging.py
# holds this file and package.json to it.
metadata(
    description="X.509 public-key and certificate pinning for MicroPython TLS connections",
    version="0.1.0",
    license="MIT",
)

package("certpin")
