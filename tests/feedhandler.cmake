# libmdfeed tests: codecs, subscriber, publisher, CLIs.
mdcast_add_c_test(test_moldudp64 SOURCES unit/test_moldudp64.c LIBS mdfeed_static TIMEOUT 30 LABELS unit)
