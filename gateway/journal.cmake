# The journal stage (docs/JOURNAL.md): its source joins gateway_core; the writer thread needs
# Threads.
find_package(Threads REQUIRED)
target_sources(gateway_core PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/journal.c)
target_link_libraries(gateway_core PUBLIC Threads::Threads)
