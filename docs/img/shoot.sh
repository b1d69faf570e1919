#!/usr/bin/env bash
# Regenerates the README's screenshots: each KB scenario's report, and
# Q193863 base vs option 2 on the step where they differ (inbound mail).
# Needs chromium. Usage: bash docs/img/shoot.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p natsim-cli -q
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
shot() { # page.html out.png WxH
    local prof; prof=$(mktemp -d -p "$tmp")
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$prof" --hide-scrollbars --force-device-scale-factor=1 \
        --window-size="$3" --screenshot="$2" "file://$1" 2>/dev/null
}
for f in scenarios/kb/*.toml; do
    s=$(basename "$f" .toml)
    ./target/release/natsim report "$f" --html "$tmp/$s.html" >/dev/null
    shot "$tmp/$s.html" "docs/img/$s.png" 1950,1100
done
./target/release/natsim report scenarios/kb/Q193863.toml --html "$tmp/cmp.html" \
    --compare base,option-2 --filter 'Q193863.toml::' >/dev/null
# Show only the comparison's inbound-mail pair (a view of the same page).
sed -i 's|</style>|#toc, section.variant, .compare .pair:not([data-step="inbound-mail"]) { display: none; }</style>|' "$tmp/cmp.html"
shot "$tmp/cmp.html" docs/img/Q193863-base-vs-option-2.png 2750,1150
