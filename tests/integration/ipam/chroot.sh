source "$MDCAST_SOURCE_DIR/tests/common/lib.sh"; skip "not written yet"
