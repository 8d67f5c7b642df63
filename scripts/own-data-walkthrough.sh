#!/bin/sh
# RECAP end to end on a folder of your own photographs: README "Your own data" quotes this
# script whole, and tests/test_own_data_walkthrough.cpp runs it (on tests/fixtures/photos, at
# the smoke scale), so the walkthrough and the test cannot drift apart. Run from the checkout:
#   sh scripts/own-data-walkthrough.sh                    # the ten sample photographs
#   PHOTOS=~/photos HUMAN=~/human.jsonl OUT=runs/mine sh scripts/own-data-walkthrough.sh
# PHOTOS: an image folder, each photo with its alt-text beside it (IMG_0001.jpg +
#   IMG_0001.txt; sub-folders allowed). HUMAN: hand-written captions of some of them, one
#   JSON line each, "style" long (the default: detailed) or short; a photo may have both:
#   {"file": "IMG_0001.jpg", "caption": "two red kayaks on a pebble beach, left of a pier"}
#   {"file": "IMG_0001.jpg", "caption": "two kayaks", "style": "short"}
# SCALE: the preset and --set overrides of the training commands: a tokenizer needs enough
#   text for its pieces (these photos' 20 captions hold at most 181), and t2i.space = latent
#   an autoencoder, which trains on the world's corpus only, so pixels. RECAP: the binary.
set -eu
RECAP=${RECAP:-build/recap}
PHOTOS=${PHOTOS:-tests/fixtures/photos}
HUMAN=${HUMAN:-tests/fixtures/photos-human.jsonl}
OUT=${OUT:-runs/mine}
SCALE=${SCALE:---preset quick --set tokenizer.vocab_size=128 --set t2i.space=pixel}

# The same photos as a WebDataset shard (KEY.jpg + KEY.txt, as img2dataset writes them: a
# key's files next to each other, hence sorted by name): every command below reads shards,
# image folders and manifests alike.
mkdir -p "$OUT/shards"
(cd "$PHOTOS" && ls | grep -E '[.](jpg|png|txt)$' | LC_ALL=C sort | tar -cf - -T -) \
    > "$OUT/shards/photos-00000.tar"

# Step 1: a tokenizer and a captioner that pre-trains on the alt-text and fine-tunes on HUMAN.
$RECAP tokenizer train --images "$PHOTOS" --captions "$HUMAN" $SCALE \
    --out "$OUT/tokenizer.model"
$RECAP captioner train --images "$PHOTOS" --captions "$HUMAN" $SCALE \
    --tokenizer "$OUT/tokenizer.model" --out "$OUT/captioner"

# Step 2: recaption the folder and the shard, long and short captions: sidecars keeping each
# photo's own caption beside the new one, a manifest, and a caption file per photo (kohya).
for kind in long short; do
  $RECAP recaption --model "$OUT/captioner/captioner.safetensors" \
      --tokenizer "$OUT/tokenizer.model" --in "$PHOTOS" --in "$OUT/shards" --kind $kind \
      --out "$OUT/recap-$kind" --format txt --manifest "$OUT/recap-$kind.jsonl"
done

# Step 3: a text-to-image model on the shard, half long and half short recaptions (DALL-E
# 3's recipe instead: --caption-source recap="$OUT/recap-long" --mix recap=0.95,original=0.05,
# original being each photo's own caption), then images from it.
$RECAP t2i train --images "$OUT/shards" $SCALE --tokenizer "$OUT/tokenizer.model" \
    --caption-source long="$OUT/recap-long" --caption-source short="$OUT/recap-short" \
    --mix long=0.5,short=0.5 --out "$OUT/t2i"
$RECAP sample --model "$OUT/t2i/t2i.safetensors" --tokenizer "$OUT/tokenizer.model" \
    --prompt "a cup of espresso on a red saucer" --prompt "a white rocket at dusk" \
    --out "$OUT/samples"

# A page to look at it all: each photo beside its alt-text and both recaptions, filterable by
# source and searchable, in one HTML file (docs/images/viewer.png).
$RECAP view --images "$PHOTOS" "$OUT/shards" --caption-source long="$OUT/recap-long" \
    --caption-source short="$OUT/recap-short" --out "$OUT/view.html"
