from higgs_lora.eval.text_norm import detect_language, normalize


def test_arabic_strips_diacritics_and_tatweel_and_unifies_letter_forms():
    vocalised = "أُحِبُّ قِرَاءَةَ الْكُتُبِ."
    plain = "احب قراءه الكتب"
    assert normalize(vocalised, "ar") == plain
    assert normalize("كـــتاب", "ar") == "كتاب"  # tatweel
    assert normalize("إلى مدرسة", "ar") == normalize("الي مدرسه", "ar") == "الي مدرسه"
    assert normalize("آمن", "ar") == "امن"
    assert normalize("مَرْحَبًا، كَيْفَ حَالُكَ؟", "ar") == "مرحبا كيف حالك"


def test_english_lower_cases_and_drops_punctuation():
    assert normalize("The weather is lovely, today!", "en") == "the weather is lovely today"
    assert normalize("Don't  STOP", "en") == "dont stop"


def test_language_is_read_off_the_script():
    assert detect_language("صَبَاحُ الْخَيْرِ يَا صَدِيقِي.") == "ar"
    assert detect_language("Please call me back.") == "en"
    assert detect_language("123 ...") == "other"
