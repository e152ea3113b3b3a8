# libmdfeed's subscriber and publisher client, the CLIs, the installed-library example.
mdcast_add_c_test(test_subscriber SOURCES unit/test_subscriber.c LIBS mdfeed_static
                  TIMEOUT 60 LABELS unit feed)
mdcast_add_c_test(test_publisher SOURCES unit/test_publisher.c LIBS mdfeed_static
                  TIMEOUT 60 LABELS unit feed)
