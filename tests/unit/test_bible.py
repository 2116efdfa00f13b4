"""Bible verse text from OSIS markup: footnotes removed with their content, words never glued together."""

from aine_lib.data.bible import osis_to_text

GEN_1_1 = ('<w lemma="strong:H0430">In</w> <w lemma="strong:H0853">the</w> <w lemma="strong:H7225">beginning</w>, '
           '<w lemma="strong:H0430">God</w><note placement="foot"><reference type="annotateRef">1:1 </reference>'
           'The Hebrew word rendered “God” is “אֱלֹהִ֑ים” (Elohim).</note><w lemma="strong:H1254">created</w> '
           '<w lemma="strong:H0853">the</w> <w lemma="strong:H8064">heavens</w> <w lemma="strong:H0430">and</w> '
           '<w lemma="strong:H0853">the</w> <w lemma="strong:H0776">earth</w>. <div eID="gen25" type="x-p"/>')


def test_osis_footnote_is_dropped_with_its_content_and_words_stay_apart():
    assert osis_to_text(GEN_1_1) == "In the beginning, God created the heavens and the earth."


def test_osis_entities_and_whitespace():
    assert osis_to_text('<w>Dios</w>&amp;\n  <note type="x"/> <w>tierra</w>') == "Dios& tierra"
    assert osis_to_text("<div type='x-p'/>") == ""
