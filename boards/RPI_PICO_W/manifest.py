# Custom RPI_PICO_W firmware with certpin frozen in (bytecode runs from flash,
# so `import certpin` costs almost no GC heap, which mbedTLS shares on rp2):
#   cd micropython/ports/rp2
#   make BOARD=RPI_PICO_W FROZEN_MANIFEST=/abs/path/to/certpin/boards/RPI_PICO_W/manifest.py
# Relative paths in include() are relative to this file.
include("$(BOARD_DIR)/manifest.py")  # what the stock Pico W firmware freezes (networking bundle)
include("../../firmware_lib/manifest.py")
