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

demo: build
	./$(BUILD)/recap run --preset $(PRESET) --name demo

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The safetensors parser, config and other input handling under AddressSanitizer + UBSan.
test-asan: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRECAP_ASAN=ON -DRECAP_BUILD_BENCH=OFF
	cmake --build build-asan -j $(JOBS) --target recap_tests recap
	cd build-asan && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure -j $(JOBS) -L asan

bench: deps
	@bash scripts/install-deps.sh --bench
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS) --target recap_bench recap
	./$(BUILD)/bench/recap_bench

clean:
	rm -rf $(BUILD) build-asan
