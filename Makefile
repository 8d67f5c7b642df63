# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a step of those.
BUILD    ?= build
JOBS     ?= $(shell nproc)
CMAKE_FLAGS ?=
PRESET   ?= quick

.PHONY: all deps configure build demo test test-asan bench clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: $(BUILD)/build.ninja

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

# The embedded RECAP experiment as far as it is built: the corpus (web images with
# alt-text, a human-captioned set, eval scenes, prompt suites), caption quality of each
# caption source against ground truth, and a contact sheet of samples.
DEMO_DIR ?= runs/demo
demo: build
	./$(BUILD)/recap corpus make --preset $(PRESET) --out $(DEMO_DIR)/corpus
	./$(BUILD)/recap corpus stats $(DEMO_DIR)/corpus --json $(DEMO_DIR)/caption-stats.json \
	  | tee $(DEMO_DIR)/caption-stats.txt
	./$(BUILD)/recap corpus show $(DEMO_DIR)/corpus web-000000000 web-000000001 web-000000002 \
	  web-000000003 web-000000004 web-000000005 --out $(DEMO_DIR)/contact-sheet.png
	@echo
	@echo "demo written to $(DEMO_DIR)/: caption-stats.txt, caption-stats.json, contact-sheet.png, corpus/"

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Everything that parses untrusted input (safetensors, configs, images, tars, captions) under
# AddressSanitizer + UBSan. Leaks are not checked: libtorch, not built with ASan, keeps
# global allocations.
test-asan: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRECAP_ASAN=ON -DRECAP_BUILD_BENCH=OFF
	cmake --build build-asan -j $(JOBS) --target recap_tests recap
	cd build-asan && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure -j $(JOBS) \
	  -R '^(Safetensors|Config|Data|World|Corpus|Sha256|AtomicFile|AtomicDir|Jsonl|RunDir)'

bench: deps
	@bash scripts/install-deps.sh --bench
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS) --target recap_bench recap_peer_bench recap
	./$(BUILD)/bench/recap_bench
	/usr/bin/python3 bench/reference/peer_bench.py $(BUILD)

clean:
	rm -rf $(BUILD) build-asan
