# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a step of those.
BUILD    ?= build
JOBS     ?= $(shell nproc)
CMAKE_FLAGS ?=
PRESET   ?= quick

.PHONY: all deps configure build demo test test-asan fuzz bench clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: $(BUILD)/build.ninja

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

# The embedded RECAP experiment from start to report: corpus, tokenizer, evaluator, captioner
# (pre-train + fine-tune), recaptioning, caption quality, one text-to-image model per arm,
# samples, evaluation. Rerunning resumes (finished stages are skipped).
RUN_NAME ?= demo
demo: build
	./$(BUILD)/recap run --preset $(PRESET) --name $(RUN_NAME)
	@echo
	@echo "report: runs/$(RUN_NAME)/report/index.html (and report.md); stage times: ./$(BUILD)/recap status $(RUN_NAME)"

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

# Coverage-guided fuzzing (libFuzzer, ASan + UBSan) of every parser of outside input, each
# target FUZZ_SECONDS long, in build-fuzz/ with clang; fails on any finding. Not part of
# `make test`. docs/RELIABILITY.md, "Fuzzing".
FUZZ_SECONDS ?= 60
FUZZ_CXX ?= clang++-14
fuzz: deps
	@command -v $(FUZZ_CXX) >/dev/null || { echo "make fuzz needs $(FUZZ_CXX) and libFuzzer:" \
	  "apt-get install clang-14 libclang-rt-14-dev"; exit 1; }
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRECAP_FUZZ=ON \
	  -DCMAKE_CXX_COMPILER=$(FUZZ_CXX)
	cmake --build build-fuzz -j $(JOBS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh build-fuzz

bench: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS) --target recap_bench recap_peer_bench recap
	./$(BUILD)/bench/recap_bench
	/usr/bin/python3 bench/reference/peer_bench.py $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
