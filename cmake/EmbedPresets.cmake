# Compiles configs/*.toml into the binary so `recap --preset NAME` works from any directory.
# Re-runs at configure time whenever a preset changes.
function(recap_embed_presets out_file)
  file(GLOB presets ${PROJECT_SOURCE_DIR}/configs/*.toml)
  list(SORT presets)
  set(entries "")
  foreach(p ${presets})
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${p})
    get_filename_component(name ${p} NAME_WE)
    file(READ ${p} text)
    string(APPEND entries "      {\"${name}\", R\"recap_toml(${text})recap_toml\"},\n")
  endforeach()
  file(WRITE ${out_file}.in "// Generated from configs/*.toml by cmake/EmbedPresets.cmake.\n"
    "#include <string>\n#include <utility>\n#include <vector>\n\nnamespace recap {\n\n"
    "const std::vector<std::pair<std::string, std::string>>& embedded_presets() {\n"
    "  static const std::vector<std::pair<std::string, std::string>> presets = {\n"
    "${entries}  };\n  return presets;\n}\n\n}  // namespace recap\n")
  configure_file(${out_file}.in ${out_file} COPYONLY)
endfunction()
