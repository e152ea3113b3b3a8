#!/usr/bin/env bash
# Interop: Wireshark's own MoldUDP64 and SoupBinTCP dissectors (Debian's tshark) read packets
# built by libmdfeed's encoders and find what the encoders meant: same sessions, sequence
# numbers, counts, message lengths, SoupBinTCP packet types, usernames and sequence numbers,
# and no expert warning or malformed flag. A capture of defective packets proves the
# warning check itself works. Nothing goes on a network: the test writes a pcap file.
# shellcheck source=tests/common/lib.sh
source "$MDCAST_SOURCE_DIR/tests/common/lib.sh"
need_cmd tshark "apt-get install tshark"

gen="$MDCAST_BUILD_DIR/tests/integration/interop_pcap"
[ -x "$gen" ] || fail "missing $gen: build the project first"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$gen" "$work/codecs.pcap" "$work/bad.pcap" >"$work/expected.txt"
decode=(-d 'udp.port==30001,moldudp64' -d 'tcp.port==30010,soupbintcp')
ts() { tshark -n -r "$1" "${decode[@]}" "${@:2}" 2>>"$work/tshark.err"; }

# 1. No expert warning/error and nothing malformed in the good capture; both defects flagged
#    in the bad one (so an empty answer means "clean", not "the filter matches nothing").
warnings=$(ts "$work/codecs.pcap" -Y '_ws.expert.severity >= 6291456 || _ws.malformed')
[ -z "$warnings" ] || fail "tshark flags our packets:
$warnings"
flagged=$(ts "$work/bad.pcap" -Y '_ws.expert.severity >= 6291456 || _ws.malformed' | wc -l)
[ "$flagged" -eq 2 ] || fail "the warning check flagged $flagged of 2 defective packets"

# 2. MoldUDP64: one line per datagram, session|sequence|count|message lengths.
ts "$work/codecs.pcap" -Y moldudp64 -T fields -E occurrence=a -E aggregator=, \
   -e moldudp64.session -e moldudp64.sequence -e moldudp64.count -e moldudp64.msglen |
  awk -F'\t' '{ s = $1; sub(/ +$/, "", s); printf "mold %s|%s|%s|%s\n", s, $2, $3, $4 }' \
  >"$work/got.txt"

# 3. SoupBinTCP fields, every occurrence across every frame, in stream order.
ts "$work/codecs.pcap" -Y soupbintcp -T fields -E occurrence=a -E aggregator=';' \
   -e soupbintcp.packet_type -e soupbintcp.username -e soupbintcp.session >"$work/soup.tsv"
join_col() { # join_col <column>: occurrences of that column, trimmed, "-" when blank
  awk -F'\t' -v c="$1" '$c != "" { n = split($c, v, ";"); for (i = 1; i <= n; i++) {
      x = v[i]; gsub(/^ +| +$/, "", x); gsub(/\047/, "", x); if (x == "") x = "-";
      out = out (out == "" ? "" : ",") x } } END { print out }' "$work/soup.tsv"
}
{
  echo "soup_types $(join_col 1)"
  echo "soup_users $(join_col 2)"
  echo "soup_sessions $(join_col 3)"
} >>"$work/got.txt"

# 4. Sequence numbers: Wireshark computes them from the Login Accepted and shows them only
#    in the tree (PDML), as "Sequence number: N (Calculated)".
ts "$work/codecs.pcap" -Y soupbintcp -T pdml >"$work/soup.pdml"
pdml_list() { # pdml_list <field> <label>
  grep -o "name=\"soupbintcp\\.$1\" showname=\"$2: [0-9]*" "$work/soup.pdml" |
    sed 's/.*: //' | paste -sd, -
}
{
  echo "soup_seqnums $(pdml_list seq_num 'Sequence number')"
  echo "soup_req_seqnums $(pdml_list req_seq_num 'Requested sequence number')"
  echo "soup_next_seqnums $(pdml_list next_seq_num 'Next sequence number')"
} >>"$work/got.txt"

if ! diff -u "$work/expected.txt" "$work/got.txt"; then
  cat "$work/tshark.err" >&2
  fail "Wireshark decodes our packets differently from what the encoders meant (diff above)"
fi
echo "interop: $(grep -c '^mold' "$work/got.txt") MoldUDP64 datagrams and" \
     "$(awk '/^soup_types/ { print split($2, a, ",") }' "$work/got.txt") SoupBinTCP packets" \
     "decoded by tshark as encoded; no warnings; 2 of 2 defects flagged"
