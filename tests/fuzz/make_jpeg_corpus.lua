-- tests/fuzz/make_jpeg_corpus.lua: writes the JPEG seeds of tests/fuzz/corpus/jpeg/ (and a few
-- image bodies for the httpd targets) with histops' own encoder, from synthetic pixels (no data
-- set is copied). Run once: build/histops tests/fuzz/make_jpeg_corpus.lua tests/fuzz/corpus
-- Not run by CI: the committed files are the corpus.
local hs = require "histops"
local dir = assert(arg[1], "usage: make_jpeg_corpus.lua CORPUS_DIR")
local gray = (hs.randn({ 12, 16, 1 }, 1) * 40 + 128):clamp(0, 255):astype("u8")
local rgb = (hs.randn({ 9, 13, 3 }, 2) * 40 + 128):clamp(0, 255):astype("u8")
local tile = hs.synth.ihc { width = 40, height = 32, nuclei = 4, seed = 3 }
local out = {
  { "gray_q90.jpg", gray, 90 }, { "rgb_q50.jpg", rgb, 50 }, { "rgb_q100.jpg", rgb, 100 },
  { "one_pixel.jpg", rgb:narrow(1, 1, 1):narrow(2, 1, 1):contiguous(), 95 },
  { "odd_17x3.jpg", (hs.randn({ 3, 17, 3 }, 4) * 60 + 100):clamp(0, 255):astype("u8"), 20 },
}
if type(tile) == "userdata" then out[#out + 1] = { "synth_ihc_q75.jpg", tile, 75 } end
for _, o in ipairs(out) do
  hs.image.save(dir .. "/jpeg/" .. o[1], o[2], { quality = o[3] })
end
print(("wrote %d JPEG seeds"):format(#out))
