# Custom ESP32_GENERIC firmware with certpin frozen in (bytecode runs from flash,
# so `import certpin` costs almost no RAM):
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/abs/path/to/certpin/boards/ESP32_GENERIC/manifest.py
# Relative paths in include() are relative to this file.
include("$(PORT_DIR)/boards/manifest.py")  # what the stock ESP32 firmware freezes
include("../../firmware_lib/manifest.py")
