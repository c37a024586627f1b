"""Every C++ file under src/ and tests/ includes the standard header of each std facility it uses
(std::X, and the unqualified C names and macros: int64_t, size_t, errno, SIGTERM, stdout, INT_MAX):
newer compilers' standard headers include less of each other than GCC 12's, so a facility that
arrives through another header today breaks the build there. A .cpp may rely on the includes of
its own header (foo.cpp on foo.h). Comments and string literals are ignored. std names the table
below does not know fail the test, so that the table stays complete."""
import os
import re

SOURCE = os.environ.get("LNFREE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
FOLDERS = ("src", "tests")
EXTENSIONS = (".cpp", ".cc", ".h", ".hpp")


def _names(text, suffixes=("",)):
    return [name + suffix for name in text.split() for suffix in suffixes]


# header -> the std:: names it declares (the first component after std::, so std::chrono covers
# std::chrono::steady_clock). A name listed under several headers is satisfied by any of them.
STD_NAMES = {
    "<algorithm>": _names("""
        adjacent_find all_of any_of binary_search clamp copy copy_backward copy_if copy_n count
        count_if equal equal_range fill fill_n find find_end find_first_of find_if find_if_not
        for_each for_each_n generate generate_n includes inplace_merge is_heap is_heap_until
        is_partitioned is_permutation is_sorted is_sorted_until iter_swap lexicographical_compare
        lower_bound make_heap max max_element merge min min_element minmax minmax_element mismatch
        move_backward next_permutation none_of nth_element partial_sort partial_sort_copy partition
        partition_copy partition_point pop_heap prev_permutation push_heap remove remove_copy
        remove_copy_if remove_if replace replace_copy replace_copy_if replace_if reverse
        reverse_copy rotate rotate_copy sample search search_n set_difference set_intersection
        set_symmetric_difference set_union shuffle sort sort_heap stable_partition stable_sort
        swap_ranges transform unique unique_copy upper_bound"""),
    "<numeric>": _names("""
        accumulate adjacent_difference exclusive_scan gcd inclusive_scan inner_product iota lcm
        partial_sum reduce transform_exclusive_scan transform_inclusive_scan transform_reduce"""),
    "<utility>": _names("""
        pair make_pair move move_if_noexcept forward swap exchange declval as_const in_place
        in_place_t in_place_type in_place_index piecewise_construct integer_sequence index_sequence
        make_index_sequence make_integer_sequence index_sequence_for get tuple_size tuple_element"""),
    "<tuple>": _names("""
        tuple make_tuple tie forward_as_tuple tuple_cat apply make_from_tuple tuple_size
        tuple_size_v tuple_element tuple_element_t get ignore"""),
    "<variant>": _names("""
        variant visit holds_alternative get get_if monostate variant_size variant_size_v
        variant_alternative variant_alternative_t variant_npos bad_variant_access"""),
    "<optional>": _names("optional nullopt nullopt_t make_optional bad_optional_access"),
    "<any>": _names("any any_cast make_any bad_any_cast"),
    "<array>": _names("array get tuple_size tuple_element"),
    "<vector>": _names("vector"),
    "<deque>": _names("deque"),
    "<list>": _names("list"),
    "<forward_list>": _names("forward_list"),
    "<map>": _names("map multimap"),
    "<set>": _names("set multiset"),
    "<unordered_map>": _names("unordered_map unordered_multimap"),
    "<unordered_set>": _names("unordered_set unordered_multiset"),
    "<queue>": _names("queue priority_queue"),
    "<stack>": _names("stack"),
    "<bitset>": _names("bitset"),
    "<string>": _names("""
        string wstring u16string u32string basic_string char_traits to_string to_wstring stoi stol
        stoll stoul stoull stof stod stold getline string_literals literals"""),
    "<string_view>": _names("string_view basic_string_view wstring_view string_view_literals literals"),
    "<memory>": _names("""
        unique_ptr shared_ptr weak_ptr make_unique make_shared allocate_shared
        enable_shared_from_this allocator allocator_traits static_pointer_cast dynamic_pointer_cast
        const_pointer_cast reinterpret_pointer_cast addressof default_delete owner_less
        pointer_traits uninitialized_copy uninitialized_fill align bad_weak_ptr destroy_at"""),
    "<functional>": _names("""
        function hash greater less equal_to not_equal_to greater_equal less_equal plus minus
        multiplies divides modulus negate logical_and logical_or logical_not bind ref cref
        reference_wrapper invoke mem_fn placeholders not_fn bad_function_call"""),
    "<cstdint>": _names("""
        int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t intptr_t uintptr_t
        intmax_t uintmax_t int_least8_t int_least16_t int_least32_t int_least64_t uint_least8_t
        uint_least16_t uint_least32_t uint_least64_t int_fast8_t int_fast16_t int_fast32_t
        int_fast64_t uint_fast8_t uint_fast16_t uint_fast32_t uint_fast64_t"""),
    # size_t: <cstddef>, or one of the C headers the standard also declares it in.
    "<cstddef>": _names("size_t ptrdiff_t nullptr_t byte max_align_t to_integer"),
    "<stdexcept>": _names("""
        runtime_error invalid_argument logic_error out_of_range domain_error length_error
        range_error overflow_error underflow_error"""),
    "<exception>": _names("""
        exception exception_ptr current_exception rethrow_exception make_exception_ptr terminate
        set_terminate terminate_handler uncaught_exceptions nested_exception throw_with_nested
        rethrow_if_nested bad_exception"""),
    "<new>": _names("bad_alloc nothrow launder align_val_t"),
    "<typeinfo>": _names("type_info bad_cast bad_typeid"),
    "<typeindex>": _names("type_index"),
    "<sstream>": _names("""
        ostringstream istringstream stringstream basic_ostringstream basic_istringstream
        basic_stringstream stringbuf"""),
    "<fstream>": _names("ifstream ofstream fstream filebuf basic_ifstream basic_ofstream basic_fstream"),
    "<iostream>": _names("cout cerr cin clog wcout wcerr wcin"),
    "<ostream>": _names("ostream basic_ostream endl flush ends"),
    "<istream>": _names("istream basic_istream iostream ws getline"),
    "<ios>": _names("""
        ios ios_base basic_ios streamsize streamoff fpos io_errc boolalpha noboolalpha hex dec oct
        fixed scientific defaultfloat hexfloat showpoint noshowpoint left right internal"""),
    "<iomanip>": _names("setw setprecision setfill put_time get_time quoted setbase resetiosflags setiosflags"),
    "<streambuf>": _names("streambuf basic_streambuf"),
    "<iterator>": _names("""
        prev next advance distance begin end cbegin cend rbegin rend size empty data back_inserter
        front_inserter inserter iterator_traits reverse_iterator make_reverse_iterator
        move_iterator make_move_iterator istream_iterator ostream_iterator istreambuf_iterator
        ostreambuf_iterator back_insert_iterator input_iterator_tag output_iterator_tag
        forward_iterator_tag bidirectional_iterator_tag random_access_iterator_tag"""),
    "<chrono>": _names("chrono chrono_literals literals"),
    "<ratio>": _names("""
        ratio ratio_add ratio_subtract ratio_multiply ratio_divide atto femto pico nano micro milli
        centi deci deca hecto kilo mega giga tera peta exa"""),
    "<thread>": _names("thread this_thread"),
    "<mutex>": _names("""
        mutex recursive_mutex timed_mutex recursive_timed_mutex lock_guard unique_lock scoped_lock
        once_flag call_once try_lock lock defer_lock try_to_lock adopt_lock defer_lock_t
        try_to_lock_t adopt_lock_t"""),
    "<shared_mutex>": _names("shared_mutex shared_timed_mutex shared_lock"),
    "<condition_variable>": _names("condition_variable condition_variable_any cv_status notify_all_at_thread_exit"),
    "<atomic>": _names("""
        atomic atomic_flag memory_order memory_order_relaxed memory_order_consume
        memory_order_acquire memory_order_release memory_order_acq_rel memory_order_seq_cst
        atomic_thread_fence atomic_signal_fence atomic_bool atomic_int atomic_size_t"""),
    "<future>": _names("future promise async shared_future packaged_task launch future_status future_error"),
    "<filesystem>": _names("filesystem"),
    "<limits>": _names("numeric_limits float_round_style float_denorm_style"),
    "<cmath>": _names("""
        abs fabs sqrt cbrt pow exp exp2 expm1 log log10 log2 log1p sin cos tan asin acos atan atan2
        sinh cosh tanh asinh acosh atanh floor ceil round lround llround trunc fmod remainder fmin
        fmax fma hypot isfinite isnan isinf isnormal signbit copysign nan nanf nanl ldexp frexp modf
        erf erfc lgamma tgamma nearbyint rint lrint llrint nextafter ilogb logb scalbn fpclassify
        float_t double_t"""),
    "<cstdlib>": _names("""
        abs labs llabs div ldiv getenv setenv exit _Exit quick_exit abort atexit at_quick_exit
        system atoi atol atoll atof strtol strtoll strtoul strtoull strtod strtof strtold malloc
        calloc realloc free rand srand qsort bsearch size_t"""),
    "<cstring>": _names("""
        memcpy memmove memset memcmp memchr strlen strcmp strncmp strcpy strncpy strcat strncat
        strchr strrchr strstr strerror strtok strspn strcspn strpbrk strcoll strxfrm size_t"""),
    "<cstdio>": _names("""
        printf fprintf sprintf snprintf vprintf vfprintf vsnprintf puts fputs fputc putc putchar
        fgets fgetc getc getchar FILE fpos_t fopen fclose fread fwrite fflush fseek ftell rewind
        feof ferror clearerr perror remove rename tmpfile setvbuf setbuf scanf sscanf fscanf ungetc
        size_t"""),
    "<cctype>": _names("""
        isdigit isalpha isalnum isspace isupper islower isxdigit ispunct isprint iscntrl isgraph
        isblank toupper tolower"""),
    "<ctime>": _names("time time_t tm timespec strftime localtime gmtime mktime difftime clock clock_t size_t"),
    "<cwchar>": _names("size_t"),
    "<csignal>": _names("signal raise sig_atomic_t"),
    "<cstdarg>": _names("va_list"),
    "<system_error>": _names("""
        error_code error_condition errc system_error system_category generic_category
        make_error_code error_category"""),
    "<charconv>": _names("to_chars from_chars chars_format to_chars_result from_chars_result"),
    "<random>": _names("""
        mt19937 mt19937_64 random_device default_random_engine minstd_rand seed_seq
        uniform_int_distribution uniform_real_distribution normal_distribution
        bernoulli_distribution discrete_distribution exponential_distribution
        poisson_distribution generate_canonical"""),
    "<regex>": _names("""
        regex wregex basic_regex smatch cmatch ssub_match csub_match match_results regex_match
        regex_search regex_replace regex_error regex_constants sregex_iterator
        sregex_token_iterator"""),
    "<initializer_list>": _names("initializer_list"),
    "<type_traits>": _names("""
        integral_constant bool_constant true_type false_type void_t result_of""") + _names("""
        is_same is_void is_integral is_floating_point is_arithmetic is_fundamental is_scalar
        is_object is_signed is_unsigned is_enum is_class is_union is_pointer is_reference
        is_lvalue_reference is_rvalue_reference is_array is_function is_member_pointer is_const
        is_volatile is_base_of is_convertible is_constructible is_default_constructible
        is_copy_constructible is_move_constructible is_nothrow_move_constructible is_assignable
        is_copy_assignable is_move_assignable is_destructible is_trivial is_trivially_copyable
        is_standard_layout is_empty is_polymorphic is_abstract is_final is_aggregate is_invocable
        is_invocable_r is_nothrow_invocable is_swappable has_unique_object_representations
        conjunction disjunction negation""", ("", "_v")) + _names("""
        enable_if conditional decay remove_reference remove_cv remove_const remove_volatile
        remove_pointer remove_extent add_const add_pointer add_lvalue_reference
        add_rvalue_reference underlying_type common_type invoke_result make_signed make_unsigned
        aligned_storage""", ("", "_t")),
    "<numbers>": _names("numbers"),
    "<complex>": _names("complex literals"),
    "<locale>": _names("locale"),
}

# Unqualified names: the C typedefs and the macros of the standard headers. Matched as whole words
# not after `.`, `->` or `::`; the C form of the header (<stdint.h> for <cstdint>) also counts.
C_NAMES = {
    "<cstdint>": _names("""
        int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t intptr_t uintptr_t
        intmax_t uintmax_t INT8_MIN INT16_MIN INT32_MIN INT64_MIN INT8_MAX INT16_MAX INT32_MAX
        INT64_MAX UINT8_MAX UINT16_MAX UINT32_MAX UINT64_MAX SIZE_MAX INTPTR_MAX UINTPTR_MAX
        PTRDIFF_MAX INTMAX_MAX UINTMAX_MAX INT32_C INT64_C UINT32_C UINT64_C"""),
    "<cstddef>": _names("size_t ptrdiff_t max_align_t offsetof"),
    "<cerrno>": _names("""
        errno EDOM ERANGE EILSEQ EINTR EAGAIN EWOULDBLOCK ENOSPC ENOENT EEXIST EACCES EPERM EBADF
        EINVAL EPIPE EIO ENOMEM EBUSY ENOTDIR EISDIR ECHILD ESRCH ETIMEDOUT ECONNREFUSED EXDEV
        ENOTEMPTY EROFS EMFILE ENFILE ENOSYS EDQUOT EFBIG"""),
    "<csignal>": _names("""
        sig_atomic_t SIGTERM SIGINT SIGKILL SIGCONT SIGSTOP SIGUSR1 SIGUSR2 SIGHUP SIGSEGV SIGABRT
        SIGPIPE SIGCHLD SIGALRM SIGQUIT SIGFPE SIGILL SIGBUS SIG_DFL SIG_IGN SIG_ERR"""),
    "<cstdio>": _names("FILE stdin stdout stderr EOF BUFSIZ SEEK_SET SEEK_CUR SEEK_END FILENAME_MAX size_t"),
    "<climits>": _names("""
        CHAR_BIT CHAR_MIN CHAR_MAX SCHAR_MIN SCHAR_MAX UCHAR_MAX SHRT_MIN SHRT_MAX USHRT_MAX INT_MIN
        INT_MAX UINT_MAX LONG_MIN LONG_MAX ULONG_MAX LLONG_MIN LLONG_MAX ULLONG_MAX"""),
    "<cfloat>": _names("""
        FLT_MAX FLT_MIN FLT_EPSILON FLT_MANT_DIG DBL_MAX DBL_MIN DBL_EPSILON DBL_MANT_DIG"""),
    "<cstdlib>": _names("EXIT_SUCCESS EXIT_FAILURE RAND_MAX size_t"),
    "<cstring>": _names("size_t"),
    "<ctime>": _names("time_t clock_t size_t"),
    "<cwchar>": _names("size_t"),
    "<cmath>": _names("NAN INFINITY HUGE_VAL HUGE_VALF M_PI FP_NAN FP_INFINITE"),
    "<cassert>": _names("assert"),
    "<cinttypes>": [f"{p}{c}{n}" for p in ("PRI", "SCN") for c in "diuxX" for n in ("8", "16", "32", "64")],
    "<cstdarg>": _names("va_list va_start va_end va_arg va_copy"),
}

# Headers that make others' names available by the standard's own rules, not by accident: the
# stream headers define the stream classes' bases (std::ios, std::streamsize, std::ostream);
# <iosfwd> declares the stream types; the containers include <initializer_list>.
IMPLIES = {
    "<iostream>": ("<ios>", "<istream>", "<ostream>", "<streambuf>"),
    "<istream>": ("<ios>", "<ostream>"),
    "<ostream>": ("<ios>",),
    "<sstream>": ("<ios>", "<istream>", "<ostream>"),
    "<fstream>": ("<ios>", "<istream>", "<ostream>"),
}
for _container in ("<array>", "<deque>", "<forward_list>", "<list>", "<map>", "<set>", "<string>",
                   "<unordered_map>", "<unordered_set>", "<vector>", "<utility>", "<random>", "<regex>"):
    IMPLIES[_container] = ("<initializer_list>",)
# <iosfwd> is enough for naming std::ostream / std::istream (references, pointers).
DECLARED_BY_IOSFWD = {"ostream", "istream", "iostream", "ios", "streamsize", "basic_ostream", "basic_istream"}


def _invert(table):
    out = {}
    for header, names in table.items():
        for name in names:
            out.setdefault(name, []).append(header)
    return out


STD_SYMBOLS = _invert(STD_NAMES)
C_SYMBOLS = _invert(C_NAMES)

_LEXER = re.compile(r"""
    (?P<raw>\b(?:u8|u|U|L)?R"(?P<delim>[^()\\\s"]{0,16})\(.*?\)(?P=delim)")
  | (?P<line_comment>//(?:[^\n\\]|\\.)*)
  | (?P<block_comment>/\*.*?\*/)
  | (?P<string>(?:\b(?:u8|u|U|L))?"(?:[^"\\\n]|\\.)*")
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<number>\b\d[\w.']*)
""", re.S | re.X)


def strip(text):
    """The text without comments and with empty string and char literals; newlines are kept, so
    line numbers stay. Digit separators (1'000) are not taken for char literals."""
    def replace(m):
        kind = m.lastgroup if m.lastgroup != "delim" else "raw"
        token = m.group(0)
        if kind == "number":
            return token
        newlines = "\n" * token.count("\n")
        if kind in ("raw", "string"):
            return '""' + newlines
        if kind == "char":
            return "''"
        return " " + newlines
    return _LEXER.sub(replace, text)


_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*<([^>]+)>', re.M)
_STD_USE = re.compile(r'(?<![\w:])(?:::)?std::([A-Za-z_]\w*)')
_C_USE = re.compile(r'(?<![\w.:])(?<!->)([A-Za-z_]\w*)')


def includes_of(stripped):
    return {f"<{h.strip()}>" for h in _INCLUDE.findall(stripped)}


def available(headers):
    """Headers whose names a file may use given its includes (see IMPLIES)."""
    out = set(headers)
    todo = list(headers)
    while todo:
        for implied in IMPLIES.get(todo.pop(), ()):
            if implied not in out:
                out.add(implied)
                todo.append(implied)
    return out


def _c_form(header):
    return f"<{header[2:-1]}.h>" if header.startswith("<c") else None


def check(stripped, headers):
    """(missing, unknown): missing is a list of (line, use, acceptable headers), one per symbol
    (its first use); unknown a list of (line, std::name) the table does not know."""
    have = available(headers)
    missing, unknown, seen = [], [], set()
    for number, line in enumerate(stripped.split("\n"), start=1):
        if _INCLUDE.match(line):
            continue
        uses = [("std::" + m.group(1), STD_SYMBOLS.get(m.group(1)), m.group(1)) for m in _STD_USE.finditer(line)]
        for m in _C_USE.finditer(line):
            if m.group(1) in C_SYMBOLS:
                options = C_SYMBOLS[m.group(1)]
                uses.append((m.group(1), options + [c for c in map(_c_form, options) if c], None))
        for use, options, std_name in uses:
            if use in seen:
                continue
            seen.add(use)
            if options is None:
                unknown.append((number, use))
                continue
            if any(h in have for h in options):
                continue
            if std_name in DECLARED_BY_IOSFWD and "<iosfwd>" in have:
                continue
            missing.append((number, use, options))
    return missing, unknown


def _source_files():
    for folder in FOLDERS:
        for root, _, files in os.walk(os.path.join(SOURCE, folder)):
            for name in sorted(files):
                if name.endswith(EXTENSIONS):
                    yield os.path.join(root, name)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return strip(f.read())


def _paired_header(path):
    stem, ext = os.path.splitext(path)
    if ext not in (".cpp", ".cc"):
        return None
    for header_ext in (".h", ".hpp"):
        if os.path.exists(stem + header_ext):
            return stem + header_ext
    return None


def scan():
    """{relative path: (missing, unknown)} over src/ and tests/, files with findings only."""
    findings = {}
    for path in _source_files():
        stripped = _read(path)
        headers = includes_of(stripped)
        paired = _paired_header(path)
        if paired is not None:
            headers |= includes_of(_read(paired))
        missing, unknown = check(stripped, headers)
        if missing or unknown:
            findings[os.path.relpath(path, SOURCE)] = (missing, unknown)
    return findings


def test_every_std_name_used_is_in_the_table():
    unknown = [f"{path}:{line}: {use}" for path, (_, found) in sorted(scan().items()) for line, use in found]
    assert not unknown, ("std names this checker does not know; add each to STD_NAMES in "
                         "tests/util/test_std_includes.py under the header that declares it:\n"
                         + "\n".join(unknown))


def test_every_file_includes_the_std_headers_it_uses():
    report = [f"{path}:{line}: {use} needs {options[0]}" + (f" (or {', '.join(options[1:])})" if options[1:] else "")
              for path, (found, _) in sorted(scan().items()) for line, use, options in found]
    assert not report, ("missing standard includes (a newer compiler's headers include less):\n"
                        + "\n".join(report))


def test_comments_and_string_literals_are_ignored():
    text = strip('// std::vector\nauto a = "std::map"; /* std::set\n */ auto b = R"x(std::deque)x";\n'
                 "int c = 1'000; char d = '\"'; std::string e;\n")
    assert text.count("\n") == 4
    missing, unknown = check(text, set())
    assert [(line, use) for line, use, _ in missing] == [(4, "std::string")] and not unknown


def test_a_missing_header_is_reported_and_an_unknown_name_too():
    text = strip("#include <vector>\nstd::vector<std::int64_t> v; int64_t w = INT64_MAX; std::frobnicate();\n")
    missing, unknown = check(text, includes_of(text))
    assert [(line, use) for line, use, _ in missing] == [(2, "std::int64_t"), (2, "int64_t"), (2, "INT64_MAX")]
    assert unknown == [(2, "std::frobnicate")]
    assert check(text, includes_of(text) | {"<stdint.h>"})[0] == [(2, "std::int64_t", ["<cstdint>"])]
    assert not check(strip("std::ostream& f(std::ostream& o);"), {"<iosfwd>"})[0]
    assert not check(strip("std::initializer_list<int> l; std::size_t n;"), {"<vector>", "<cstring>"})[0]
