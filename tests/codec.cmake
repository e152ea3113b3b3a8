# Wire codec tests (MoldUDP64, SoupBinTCP, ITCH 5.0), fuzz smoke, interop, install.
mdcast_add_c_test(test_moldudp64 SOURCES unit/test_moldudp64.c LIBS mdfeed_static TIMEOUT 30 LABELS unit)
