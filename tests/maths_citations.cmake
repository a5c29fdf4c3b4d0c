# Every section the code cites exists (cmake -P).
#
# Comments cite the maths as `§N` or `§N.M`: a section of docs/maths.md. A
# citation written right after another document's name (`docs/hf-compat.md
# §3–§7`) is a section of that document instead, whose headings are
# `## N. Title`. This script finds every citation under SCAN (a ;-list of
# folders and files, relative to SOURCE) and fails, naming the file and the
# number, when no heading carries it. Run by CTest (maths_citations), and on a
# planted bogus citation (maths_citations_bogus) to show that it does fail.
#
#   cmake -DSOURCE=<repo> [-DSCAN="src;cl;..."] [-DEXTRA=<file>] -P maths_citations.cmake

cmake_minimum_required(VERSION 3.25)

if(NOT SOURCE)
  message(FATAL_ERROR "maths_citations: pass -DSOURCE=<repository root>")
endif()
if(NOT SCAN)
  set(SCAN src cl include tools tests README.md)
endif()

# The section numbers a document's headings carry.
function(doc_sections doc out)
  if(NOT EXISTS "${SOURCE}/docs/${doc}")
    set(${out} "" PARENT_SCOPE)
    return()
  endif()
  file(STRINGS "${SOURCE}/docs/${doc}" heads REGEX "^#+ " ENCODING UTF-8)
  set(nums "")
  foreach(h IN LISTS heads)
    if(doc STREQUAL "maths.md")
      # "### §5.2 Keys are normalised queries"
      if(h MATCHES "^#+ §([0-9]+(\\.[0-9]+)*)( |$)")
        list(APPEND nums "${CMAKE_MATCH_1}")
      endif()
    elseif(h MATCHES "^#+ ([0-9]+)\\. ")
      # other documents: "## 8. The float32 artefact ..."
      list(APPEND nums "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  set(${out} "${nums}" PARENT_SCOPE)
endfunction()

doc_sections(maths.md maths_sections)
if(NOT maths_sections)
  message(FATAL_ERROR "maths_citations: docs/maths.md has no `§N` headings")
endif()

set(files "")
foreach(entry IN LISTS SCAN)
  if(IS_DIRECTORY "${SOURCE}/${entry}")
    file(GLOB_RECURSE found "${SOURCE}/${entry}/*")
    list(APPEND files ${found})
  elseif(EXISTS "${SOURCE}/${entry}")
    list(APPEND files "${SOURCE}/${entry}")
  endif()
endforeach()
if(EXTRA)
  list(APPEND files "${EXTRA}")
endif()
# Golden data (binary) cites nothing.
list(FILTER files EXCLUDE REGEX "/tests/data/")

# A citation: an optional document name, then one number or a run of them
# ("§3–§5", "§3, §9").
set(num "§[0-9]+(\\.[0-9]+)*")
set(cite "([A-Za-z0-9_-]+\\.md )?${num}((–|-|, )${num})*")
set(bad "")
set(count 0)
foreach(f IN LISTS files)
  file(READ "${f}" text)
  string(REGEX MATCHALL "${cite}" hits "${text}")
  foreach(hit IN LISTS hits)
    set(doc maths.md)
    set(known "${maths_sections}")
    if(hit MATCHES "^([A-Za-z0-9_-]+\\.md) ")
      set(doc "${CMAKE_MATCH_1}")
      doc_sections("${doc}" known)
    endif()
    string(REGEX MATCHALL "${num}" numbers "${hit}")
    foreach(n IN LISTS numbers)
      string(REPLACE "§" "" n "${n}")
      math(EXPR count "${count} + 1")
      list(FIND known "${n}" at)
      if(at EQUAL -1)
        file(RELATIVE_PATH rel "${SOURCE}" "${f}")
        list(APPEND bad "${rel}: §${n} (no such heading in docs/${doc})")
      endif()
    endforeach()
  endforeach()
endforeach()

if(bad)
  list(REMOVE_DUPLICATES bad)
  string(REPLACE ";" "\n  " bad "${bad}")
  message(FATAL_ERROR "maths_citations: cited sections that do not exist:\n  ${bad}")
endif()
message(STATUS "maths_citations: ${count} citations, all resolve")
